"""The labelled question set for ``bench_quality``: documents built from text that exists on
every machine running this benchmark, and hand-written questions that point at them.

Documents: the docstrings of standard-library modules of the running Python (one Markdown
document per module: the module docstring, then one heading per public function, class and
method, read with ``ast`` from the module's source file, nothing imported), plus five
licence texts from Debian's ``/usr/share/common-licenses``. A missing source file is an error,
never a silently smaller set.

Questions: written by hand, paraphrased rather than copied. Each names the document that
answers it and an ``evidence`` phrase from the answering passage (matched case- and
whitespace-insensitively against retrieved chunks, for passage-level scores). ``style`` is
"keyword" (terse, rare identifiers, the way people search) or "natural" (a paraphrase).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

_MODULE_NAMES = """
    heapq bisect textwrap difflib shutil tempfile base64 hmac secrets uuid ipaddress fractions
    statistics calendar sched queue graphlib zipfile tarfile configparser contextlib functools
    random timeit smtplib urllib.parse mimetypes wave shelve socketserver threading subprocess
    imaplib traceback cmd weakref copy filecmp tokenize poplib logging argparse optparse ftplib
"""
MODULES = tuple(_MODULE_NAMES.split())
LICENSE_DIR = Path("/usr/share/common-licenses")
LICENSES = ("Apache-2.0", "CC0-1.0", "MPL-2.0", "GPL-3", "Artistic")


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    document: str  # file name as ingested
    evidence: str
    style: str  # "keyword" | "natural"
    corpus: str = "stdlib"  # "stdlib" | "postgres"
    answerable: bool = True  # False: the corpus does not hold the answer (abstention)

    @property
    def split(self) -> str:
        """ "tune" or "report", fixed by a hash of the question: weights, thresholds and
        sizes are chosen on the tune half only, and the report half is what is reported."""
        return "tune" if hashlib.sha256(self.text.encode()).digest()[0] % 2 == 0 else "report"


# document | K(eyword) or N(atural) | evidence phrase in the answering passage | question
_TABLE = """
heapq | N | Transform list into a heap, in-place | How can I turn an existing list into a priority queue in linear time without building a new list?
heapq | K | Fast version of a heappush followed by a heappop | heappushpop vs heappush then heappop
bisect | N | Return the index where to insert item x | Where should a value go so that a sorted list stays sorted, after any equal entries?
textwrap | N | Remove any common leading whitespace | How do I strip the indentation shared by all lines of a triple-quoted string?
textwrap | K | Collapse and truncate the given text | shorten text placeholder truncate width
difflib | N | good enough" matches | How can I suggest the closest correctly spelled words for a typo from a list of valid words?
difflib | K | generate the delta as a unified diff | unified_diff n context lines fromfile tofile
difflib | N | Return an upper bound on ratio() | Which method gives a cheap upper bound on how alike two sequences are before computing the exact similarity?
shutil | N | Recursively delete a directory tree | How do I delete a folder together with everything inside it?
shutil | K | Create an archive file | make_archive base_name root_dir zip tar
shutil | N | Copy data and metadata | How can I copy a file and keep its timestamps and permission bits too?
tempfile | N | switch from BytesIO | I want a scratch file kept in memory until it gets big, then moved to disk.
tempfile | K | subject to race conditions | mktemp race condition unsafe
base64 | N | URL- and filesystem-safe | How do I encode bytes so the result can be used in a web address or a file name?
base64 | K | using Ascii85 | Ascii85 encode
hmac | N | Keyed-Hashing for Message Authentication | How do I compute a keyed digest to check a message was not tampered with, using a shared secret?
secrets | N | Return a random URL-safe text string | What should I use to make a password-reset link token instead of the ordinary random number functions?
uuid | N | SHA-1 hash of a namespace UUID | How do I create a stable identifier derived from a namespace and a name with SHA-1?
uuid | K | Generate a UUID from a host ID, sequence number, and the current time | uuid1 clock_seq node hardware address
ipaddress | N | Summarize a network range | Given the first and last address of a range, how do I get the fewest networks that cover it?
ipaddress | K | Collapse a list of IP objects | collapse_addresses
fractions | N | implements rational numbers | How can I represent one third exactly, without floating-point rounding?
statistics | N | population variance | Which function measures the spread of an entire population rather than of a sample?
statistics | K | Pearson's correlation coefficient | Pearson correlation coefficient
statistics | N | Slope and intercept for simple linear regression | How do I fit a straight line through pairs of data points?
statistics | K | binned around the midpoints | median_grouped binned intervals
calendar | N | Return True for leap years | How do I check whether a year has a 29th of February?
calendar | N | number of days (28-31) | How many days does a month have, and on which weekday does it begin?
sched | N | Enter a new event in the queue at an absolute time | How do I queue an event to fire at a specific absolute time in a simple event scheduler?
queue | N | retrieves most recently added entries first | Which queue hands back the item added most recently first, like a stack?
queue | K | priority order (lowest first) | PriorityQueue lowest first
graphlib | N | topologically sort a graph | How can I order jobs so that each one runs only after the jobs it depends on?
zipfile | N | checking the magic number | How can I tell quickly whether a file is a ZIP archive?
tarfile | K | open for reading with gzip compression | tar open r:gz gzip compression mode
configparser | N | Enables interpolation between sections | How can a setting in an INI file refer to a value defined in another section?
configparser | K | key-value pair is found before any section header | MissingSectionHeaderError
contextlib | N | Context manager to suppress specified exceptions | How do I ignore one particular exception inside a with block?
contextlib | N | temporarily redirecting stdout | How can I temporarily send what print writes to a file instead of the console?
contextlib | K | dynamic management of a stack of exit callbacks | ExitStack exit callbacks
functools | N | Least-recently-used cache decorator | How can I memoize a function but bound how many results are remembered?
functools | K | fills in missing ordering methods | total_ordering
functools | N | Convert a cmp= function into a key= function | How do I adapt an old two-argument comparison function for use as a sort key?
random | K | Mersenne Twister core generator | Mersenne Twister core generator
random | N | von Mises | Which generator draws random angles from a circular distribution?
timeit | N | measuring execution time of small code snippets | How do I find out how long a tiny piece of code takes to execute?
smtplib | K | starttls | SMTP starttls
urllib.parse | N | Parse a URL into 6 components | How do I break a web address into scheme, host, path, query and fragment?
urllib.parse | K | replace plus signs by spaces | unquote_plus plus signs spaces
mimetypes | N | Guess the type of a file | How can I guess the media type of a file from its name?
wave | K | returns sample width in bytes | WAV getnchannels getsampwidth getframerate
shelve | N | persistent, dictionary-like object | How do I keep a dictionary of arbitrary Python objects saved on disk between runs?
socketserver | N | ThreadingMixIn | How can a network server answer each request in its own thread?
threading | N | synchronizing a fixed number of threads | How can several threads wait for each other at a common point before they all continue?
threading | K | manage a counter representing the number of release() calls | Semaphore counter release acquire
subprocess | N | Run command with arguments and return its output | How do I run a program and get back what it printed, with an error if it fails?
imaplib | K | Select a mailbox | IMAP4 select mailbox readonly
traceback | N | Shorthand for 'print_exception(*sys.exc_info(), limit, file)' | How do I print the stack trace of the exception being handled right now?
cmd | N | line-oriented command interpreters | What helps me build a simple interactive shell that reads one command per line?
weakref | N | Mapping class that references values weakly | How can a cache map keys to objects without keeping those objects alive?
copy | N | difference between shallow and deep copying | What is the difference between duplicating a container and duplicating it together with everything nested in it?
filecmp | N | manages the comparison of 2 directories | How do I compare two directory trees to see which files differ?
tokenize | K | cookie as specified in pep-0263 | detect_encoding coding cookie BOM
poplib | K | Retrieve message header of message | POP3 top message header lines
logging | N | Do basic configuration for the logging system | What is the quickest way to send log messages to a file with a chosen format from a small script?
argparse | K | The number of command-line arguments that should be | add_argument nargs
optparse | N | Originally distributed as Optik | Which older command-line option parser was originally distributed as Optik?
ftplib | N | Store a file in binary mode | How do I upload a file to a file-transfer server in binary mode?
Apache-2.0 | N | institute patent litigation | If I sue someone claiming the software infringes my patent, do I lose the patent grant?
Apache-2.0 | K | If the Work includes a "NOTICE" text file | NOTICE file attribution notices redistribution
CC0-1.0 | N | waives, abandons, and surrenders | Can I give up all of my copyright so that anyone may use the work for any purpose?
MPL-2.0 | N | means a work that combines Covered Software with other material | May I combine covered code with files under other terms into a bigger program?
MPL-2.0 | K | Incompatible With Secondary Licenses | Secondary License Incompatible
GPL-3 | N | "Installation Information" for a User Product means | Must a device maker give me what I need to install modified software on the consumer product?
GPL-3 | K | Anti-Circumvention Law | anti-circumvention DRM technological measures
Artistic | N | "Standard Version" refers to such a Package | What counts as the unmodified original package under this licence?
difflib | K | Ratcliff and Obershelp | Ratcliff Obershelp gestalt pattern matching
tarfile | K | In pax headers, "name" is called "path" | pax header path linkpath
statistics | K | overlapping coefficient (OVL) | OVL overlapping coefficient normal distributions
zipfile | K | requires ZIP64 extensions | ZIP64 extensions LargeZipFile
weakref | K | atexit attribute is true | finalize atexit reverse order of creation
logging | K | BASIC_FORMAT format string | BASIC_FORMAT StreamHandler stderr root logger
random | K | CryptGenRandom on Windows | CryptGenRandom /dev/urandom
configparser | K | zc.buildout | zc.buildout syntax
hmac | K | Also complies with RFC 4231 | RFC 4231
ipaddress | K | Return the IPv4 mapped address | ipv4_mapped IPv6
"""


def _parse(table: str) -> tuple[Question, ...]:
    questions = []
    for line in table.strip().splitlines():
        document, style, evidence, text = (part.strip() for part in line.split(" | ", 3))
        name = f"{document}.txt" if document in LICENSES else f"{document}.md"
        questions.append(Question(text, name, evidence, "keyword" if style == "K" else "natural"))
    return tuple(questions)


QUESTIONS = _parse(_TABLE)


def _doc(node: ast.AST) -> str:
    text = ast.get_docstring(node)  # type: ignore[arg-type]
    return inspect.cleandoc(text) if text else ""


def module_document(name: str) -> str:
    """``# module``, its docstring, then ``## name`` per public function or class and
    ``### Class.method`` per documented public method."""
    spec = importlib.util.find_spec(name)
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    if origin is None or not origin.is_file():
        raise FileNotFoundError(f"the source of the standard-library module {name} is missing")
    tree = ast.parse(origin.read_text(encoding="utf-8"))
    parts = [f"# {name}", _doc(tree)]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_") and _doc(node):
                parts += [f"## {name}.{node.name}()", _doc(node)]
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            methods = [
                (f"### {name}.{node.name}.{sub.name}()", _doc(sub))
                for sub in node.body
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef)
                and not sub.name.startswith("_")
                and _doc(sub)
            ]
            if _doc(node) or methods:
                parts += [f"## {name}.{node.name}", _doc(node)]
                for heading, text in methods:
                    parts += [heading, text]
    return "\n\n".join(part for part in parts if part) + "\n"


def documents() -> list[tuple[str, bytes]]:
    """(file name, contents) for every document of the set."""
    out = [(f"{name}.md", module_document(name).encode()) for name in MODULES]
    for name in LICENSES:
        path = LICENSE_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (Debian's base-files installs it)")
        out.append((f"{name}.txt", path.read_bytes()))
    return out


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()
