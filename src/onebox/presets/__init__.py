"""Saved chat presets: a name with a system prompt, model, collections and temperature."""
