"""Guards for the request paths: PII redaction, prompt-injection heuristics, input cleaning
and canary tokens. Pure functions and small stateful stream filters; no I/O."""

from onebox.guard.canary import CanaryWatch, contains_canary, new_canary, system_prompt_with_canary
from onebox.guard.injection import (
    GuardResult,
    InjectionPolicy,
    InjectionReport,
    apply,
    fence_untrusted,
    scan,
    without_fenced_passages,
)
from onebox.guard.leak import LeakFilter, PromptSecret
from onebox.guard.output import OutputFilter
from onebox.guard.pii import Finding, PiiPolicy, StreamRedactor, redact
from onebox.guard.pii_rules import PII_TYPES
from onebox.guard.text import (
    GuardViolation,
    MessageLimits,
    clean_messages,
    clean_text,
    enforce_limits,
)

__all__ = [
    "PII_TYPES",
    "CanaryWatch",
    "Finding",
    "GuardResult",
    "GuardViolation",
    "InjectionPolicy",
    "InjectionReport",
    "LeakFilter",
    "MessageLimits",
    "OutputFilter",
    "PiiPolicy",
    "PromptSecret",
    "StreamRedactor",
    "apply",
    "clean_messages",
    "clean_text",
    "contains_canary",
    "enforce_limits",
    "fence_untrusted",
    "new_canary",
    "redact",
    "scan",
    "system_prompt_with_canary",
    "without_fenced_passages",
]
