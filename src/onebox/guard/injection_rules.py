"""Phrase and structure signals for the prompt-injection scanner.

Patterns run on a normalized copy of the text: NFKC, case-folded, hidden characters
removed (see :func:`onebox.guard.injection.scan`). Weights are combined as a noisy-or, so
one strong signal (0.7+) crosses the default 0.5 threshold and weak ones need company.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

W = r"[^\w]+"  # a word gap: spaces and punctuation
ANY_WORDS = r"(?:\w+[^\w]+){0,%d}?"

_IGNORE_VERB = r"\b(?:ignore|disregard|forget|override|bypass|abandon|discard|neglect|drop)"
_TARGET = (
    r"(?:instructions?|prompts?|directives|guidelines|guardrails|programming|system\W+message)\b"
)
_QUALIFIER = (
    r"(?:all|any|every|your|these|those|previous|prior|above|earlier|preceding|initial|"
    r"original|former|existing|system|developer|safety)"
)
# "rules", "directions" and the like are everyday words: only with a pointed qualifier
_WEAK_TARGET = r"(?:rules|directions|constraints|commands|restrictions|limitations)\b"
_WEAK_QUALIFIER = r"(?:your|previous|prior|above|earlier|preceding|system|developer|safety)"


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    weight: float
    pattern: re.Pattern[str]
    # demote when the phrase reads as the user talking about their own task
    # ("should I ignore the previous instructions on the box?")
    demotable: bool = False
    # the pattern only runs when one of these substrings occurs (a cheap pre-filter)
    needles: tuple[str, ...] = ()


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


PHRASES: tuple[Signal, ...] = (
    Signal("ignore_instructions", 0.75, _p(
        _IGNORE_VERB + W + ANY_WORDS % 2 + _QUALIFIER + W + ANY_WORDS % 2 + _TARGET
        + "|" + _IGNORE_VERB + W + ANY_WORDS % 2 + _WEAK_QUALIFIER + W + ANY_WORDS % 1 + _WEAK_TARGET
    ), demotable=True, needles=(
        "ignor", "disregard", "forget", "overrid", "bypass", "abandon", "discard", "neglect", "drop",
    )),
    Signal("ignore_instructions", 0.75, _p(
        # multilingual: es, fr, de, it, pt, ru, zh, ja
        r"\b(?:ignora|ignore|olvida|olvide|omite)\W+(?:todas\W+)?(?:las\W+)?instrucciones\W+(?:anteriores|previas)"
        r"|\b(?:ignore[sz]?|oublie[sz]?)\W+(?:toutes\W+)?(?:les\W+|vos\W+|tes\W+)?(?:instructions|consignes)\W+(?:précédentes|antérieures|ci\W+dessus)"
        r"|\b(?:ignoriere|ignorieren\W+sie|vergiss|vergessen\W+sie)\W+(?:\w+\W+){0,2}?(?:vorherigen|bisherigen|obigen|vorigen|alle)\W+(?:\w+\W+)?(?:anweisungen|instruktionen|befehle|regeln)"
        r"|\b(?:ignora|dimentica)\W+(?:tutte\W+)?(?:le\W+)?istruzioni\W+precedenti"
        r"|\b(?:ignore|ignora|esqueça|esqueca)\W+(?:todas\W+)?(?:as\W+)?(?:instruções|instrucoes)\W+(?:anteriores|prévias|previas)"
        r"|(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте)\W+(?:\w+\W+){0,2}?(?:инструкции|указания|правила)"
        r"|(?:忽略|无视|忘记|忽视|忘掉)(?:掉)?(?:你)?(?:之前|以上|上面|先前|前面|所有|全部|以前)(?:的)?(?:所有|全部)?(?:的)?(?:指令|指示|说明|提示|规则)"
        r"|(?:以前|前|上記|これまで)の(?:すべての|全ての)?(?:指示|命令|指令)を(?:すべて|全て)?(?:無視|忘れ)"
    ), needles=(
        "ignor", "olvid", "omite", "oubli", "vergiss", "vergessen", "dimentica", "esque", "игнор",
        "забуд", "忽", "无视", "忘", "無視",
    )),
    Signal("disregard_system_prompt", 0.8, _p(
        _IGNORE_VERB + W + ANY_WORDS % 3 + r"(?:system|developer)" + W + r"(?:prompt|message|instructions?)\b"
    ), demotable=True, needles=("system", "developer")),
    Signal("reveal_system_prompt", 0.65, _p(
        r"\b(?:reveal|print|show|display|output|repeat|recite|dump|leak|tell|share|expose|"
        r"spell|echo|paste|translate)\W+(?:me\W+|us\W+)?(?:out\W+)?(?:your|the|this|all|any)\W+" + ANY_WORDS % 2
        + r"(?:system|developer|hidden|secret|internal|confidential)\W+(?:prompt|instructions|message|rules|directives)\b"
        r"|\b(?:repeat|print|output|reveal|dump|recite)\W+(?:\w+\W+){0,3}?(?:your|the)\W+(?:initial|original|full|exact|complete|first|entire)\W+(?:prompt|instructions)\W+(?:verbatim|word\W+for\W+word|exactly)"
        r"|\b(?:repeat|print|output|recite)\W+(?:all\W+|everything\W+|the\W+(?:text|words)\W+)(?:\w+\W+){0,2}?(?:above|before\W+this)"
        r"|\bwhat\W+(?:is|are|was|were)\W+your\W+(?:system\W+prompt|initial\W+instructions|hidden\W+instructions)"
    ), demotable=True, needles=(
        "system", "developer", "hidden", "secret", "internal", "confidential", "verbatim", "word",
        "exactly", "above", "before",
    )),
    Signal("reveal_system_prompt", 0.65, _p(
        r"\b(?:muestra|revela|imprime|dime)\W+(?:\w+\W+){0,2}?(?:prompt|instrucciones)\W+del\W+sistema"
        r"|\b(?:montre|révèle|affiche|donne)\W+(?:\w+\W+){0,2}?(?:prompt|instructions)\W+(?:du\W+)?système"
        r"|\b(?:zeige|verrate|gib)\W+(?:\w+\W+){0,3}?(?:system-?prompt|systemanweisungen)"
        r"|(?:显示|输出|告诉我|泄露|打印|重复)(?:一下)?(?:你的)?(?:系统提示|系统指令|系统提示词)"
    ), demotable=True, needles=("sistema", "système", "system", "系统")),
    Signal("persona_override", 0.7, _p(
        r"\byou\W+are\W+(?:now\W+)?(?:dan|stan|an?\W+unrestricted|an?\W+unfiltered|jailbroken|"
        r"in\W+(?:developer|god|dan|jailbreak)\W+mode|free\W+(?:from|of)\W+(?:all\W+)?(?:rules|restrictions))"
        r"|\b(?:developer|god|dan|jailbreak|unrestricted)\W+mode\W+(?:enabled|activated|on)\b"
        r"|\b(?:enable|activate|enter)\W+(?:developer|god|dan|jailbreak)\W+mode\b"
        r"|\bdo\W+anything\W+now\b"
    ), needles=("you", "mode", "anything")),
    Signal("no_restrictions", 0.5, _p(
        r"\b(?:pretend|act|behave|imagine|respond)\W+" + ANY_WORDS % 4
        + r"(?:no|without)\W+(?:\w+\W+){0,2}?(?:restrictions|filters|guidelines|limitations|censorship|ethics|morals|rules)\b"
    ), needles=("pretend", "act", "behave", "imagine", "respond")),
    Signal("new_instructions", 0.35, _p(
        r"^\W*(?:new|updated|real|actual|revised|override)\W+(?:system\W+)?instructions?\W*:"
        r"|\bfrom\W+now\W+on\W+you\W+(?:will|must|shall|are\W+going\W+to)\b"
    ), needles=("instruction", "now")),
    Signal("jailbreak_term", 0.3, _p(r"\bjailbr(?:eak|oken)\b"), needles=("jailbr",)),
    Signal("role_tag", 0.75, _p(
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|"
        r"end_header_id|begin_of_text)\|>"
        r"|\[/?inst\]|<</?sys>>|<\s*/?\s*(?:system|developer)\s*>"
        r"|^\W{0,3}#{2,4}\s*(?:system|assistant|instruction|response|developer)\s*:"
    ), needles=("<|", "inst]", "sys>>", "system", "developer", "#")),
    Signal("role_prefix", 0.3, _p(r"^\s*(?:system|developer)\s*(?:prompt|message)?\s*:"),
           needles=("system", "developer")),
    Signal("fake_tool_call", 0.45, _p(
        r"</?(?:tool_call|function_call|tool_use|function_calls)>|<\|(?:tool_call|python_tag)\|>"
        r"|\"(?:tool_calls|function_call)\"\s*:\s*[\[{]|<invoke\s+name\s*=|<function\s*=\s*\w+"
        r"|\{\s*\"name\"\s*:\s*\"[\w.-]+\"\s*,\s*\"(?:arguments|parameters)\"\s*:"
    ), needles=("tool", "function", "invoke", "python_tag", '"name"')),
    Signal("exfiltration_instruction", 0.4, _p(
        r"\b(?:append|add|include|insert|encode|embed|put|send)\W+" + ANY_WORDS % 6
        + r"(?:conversation|chat\W+history|secrets?|passwords?|api\W+keys?|personal\W+data|previous\W+messages)\W+"
        + ANY_WORDS % 6 + r"(?:url|link|image|query\W+string|webhook)\b"
    ), needles=("url", "link", "image", "query", "webhook")),
)  # fmt: skip

# Markdown / HTML images pointing at a remote URL that carries a query string.
MD_IMAGE = re.compile(
    r"!\[[^\]\n]{0,300}\]\(\s*<?(?:https?:)?//[^)\s>]{1,2000}>?(?:\s+\"[^\"]*\")?\s*\)"
    r"|<img\b[^>]{0,500}?\bsrc\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]{1,2000}",
    re.IGNORECASE,
)
TEMPLATE_HOLE = re.compile(
    r"\{[^{}\s]{0,60}\}|\$\{|\[[A-Z_]{3,}\]|%7B|<[A-Za-z_ ]{2,40}>|\b(?:INSERT|DATA|SECRET|CHAT|HISTORY|SUMMARY)\b"
)
HAS_QUERY = re.compile(r"\?[^)\s]*=")

BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])")
# Hex of ASCII text: every byte is 0x00-0x7f. Starting with a character class (the
# look-behind comes second) lets the regex engine skip ahead quickly.
HEX_BLOB = re.compile(r"[0-7][0-9A-Fa-f](?<![0-9A-Fa-f]..)(?:[0-7][0-9A-Fa-f]){15,}")
HEX_ESCAPES = re.compile(r"(?:\\x[0-7][0-9A-Fa-f]){8,}")

# 1:1 character folds for l33t-speak, applied in a second pass over the normalized text.
LEET = str.maketrans("013457@$!|", "oieastasil")
