// @ts-check
// The "Change password" panel (signed-in accounts only; the account menu offers it).

"use strict";

import { ApiError, api, h, reportUnauthorized } from "./core.js";
import { registerPanel } from "./panel.js";
import { button, card, field, notice, textInput, whileBusy } from "./ui.js";

registerPanel("password", {
  title: "Change password",
  render(body) {
    const current = textInput({ type: "password", autocomplete: "current-password", required: true, maxlength: 1024, testid: "password-current" });
    const next = textInput({ type: "password", autocomplete: "new-password", required: true, minlength: 10, maxlength: 1024, testid: "password-new" });
    const repeat = textInput({ type: "password", autocomplete: "new-password", required: true, minlength: 10, maxlength: 1024, testid: "password-repeat" });
    const status = notice("password-status");
    const submit = button("Change password", { className: "button primary", type: "submit", testid: "password-submit" });
    const form = h("form", { className: "stack-form narrow-form" }, [
      status.node,
      field("Current password", current),
      field("New password", next, { hint: "At least 10 characters." }),
      field("Repeat the new password", repeat),
      h("div", { className: "form-actions" }, [submit]),
    ]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      status.clear();
      if (next.value !== repeat.value) {
        status.show("The new passwords do not match.");
        repeat.focus();
        return;
      }
      await whileBusy(submit, "Saving…", async () => {
        try {
          await api(
            "POST",
            "/api/auth/password",
            { current_password: current.value, new_password: next.value },
            { signInOn401: false }, // 401 here means "wrong current password", not "signed out"
          );
          form.reset();
          status.show("Password changed. Other browsers signed in to this account were signed out.", "success");
        } catch (error) {
          if (error instanceof ApiError && error.code === "unauthenticated") {
            reportUnauthorized(error); // the session itself is gone
            return;
          }
          status.show(error);
          (error instanceof ApiError && error.param === "new_password" ? next : current).focus();
        }
      });
    });
    body.append(
      card("Change your password", [form], {
        description: "You stay signed in here. Every other sign-in of this account ends.",
      }),
    );
  },
});
