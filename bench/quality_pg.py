"""The second corpus of ``bench_quality``: pages of the PostgreSQL 15 HTML manual as Debian's
``postgresql-doc-15`` installs it (``make bench-deps`` does), ingested as the web pages they
are: navigation headers and footers included, so boilerplate handling is measured too.

Questions: written by hand the way a developer would ask, not copied from the pages; each
names its page and an ``evidence`` phrase of the answering passage. ``UNANSWERABLE`` holds
questions about things the selected pages do not cover (other products, pages left out):
the answer layer should abstain on them; retrieval is not scored on them.
"""

from __future__ import annotations

from pathlib import Path

from bench.quality_set import Question

PG_DOC_DIR = Path("/usr/share/doc/postgresql-doc-15/html")

PAGES = tuple(
    [
        "functions-uuid",
        "dml-delete",
        "indexes-unique",
        "routine-reindex",
        "datatype-uuid",
        "tutorial-fk",
        "mvcc-intro",
        "mvcc-caveats",
        "ddl-default",
        "indexes-expressional",
        "queries-values",
        "dml-returning",
        "sql-do",
        "queries-limit",
        "dml-update",
        "dml-insert",
        "sql-refreshmaterializedview",
        "ddl-system-columns",
        "indexes-ordering",
        "sql-listen",
        "datatype-boolean",
        "indexes-multicolumn",
        "queries-union",
        "sql-begin",
        "ddl-generated-columns",
        "datatype-enum",
        "queries-order",
        "indexes-intro",
        "sql-creatematerializedview",
        "tutorial-transactions",
        "sql-truncate",
        "tutorial-join",
        "sql-cluster",
        "sql-createextension",
        "sql-notify",
        "functions-sequence",
        "functions-srf",
        "sql-prepare",
        "tutorial-window",
        "ddl-alter",
        "sql-lock",
        "datatype-character",
        "plpgsql-errors-and-messages",
        "sql-set-transaction",
        "indexes-types",
        "functions-conditional",
        "datatype-binary",
        "functions-window",
        "indexes-partial",
        "indexes-index-only-scans",
        "sql-analyze",
        "sql-createsequence",
        "ddl-inherit",
        "backup-dump",
        "sql-explain",
        "sql-vacuum",
        "ddl-rowsecurity",
        "functions-array",
        "ddl-schemas",
        "textsearch-intro",
        "plpgsql-declarations",
        "sql-createview",
        "plpgsql-cursors",
        "ddl-priv",
        "pgtrgm",
        "datatype-numeric",
        "plpgsql-trigger",
        "queries-with",
        "ddl-constraints",
        "sql-createtrigger",
        "explicit-locking",
        "sql-insert",
        "transaction-iso",
        "textsearch-controls",
        "sql-createpolicy",
        "hstore",
        "runtime-config-connection",
        "sql-createindex",
        "pgcrypto",
        "runtime-config-query",
        "functions-formatting",
        "sql-copy",
        "datatype-json",
        "using-explain",
        "functions-aggregate",
        "functions-math",
        "routine-vacuuming",
        "datatype-datetime",
        "runtime-config-resource",
        "plpgsql-control-structures",
        "ddl-partitioning",
        "functions-string",
        "functions-datetime",
    ]
)

# page | evidence phrase in the answering passage | question
TABLE = """
functions-uuid | returns a version 4 (random) uuid | Is there a built-in way to make a random unique id for a row without installing an extension?
dml-returning | especially valuable when it would otherwise be difficult to identify the modified rows | Can I get back the rows my insert or update changed without running a second select?
queries-limit | skip that many rows before beginning to return rows | How do I page through results, leaving out the first twenty and showing the next ten?
indexes-partial | built over a subset of a table | Can I build an index that only covers the rows where a flag is set, to keep it small?
ddl-generated-columns | always computed from other columns | How do I make a column whose value is always derived from two other columns of the same row?
sql-truncate | quickly removes all rows from a set of tables | What is the fastest way to empty a big table completely?
sql-refreshmaterializedview | completely replaces the contents of a materialized view | How do I update the stored results of a precomputed view after the base data changed?
sql-listen | registers the current session as a listener | How can my application get woken up when another connection signals an event?
datatype-character | trailing spaces are treated as semantically insignificant | Do padded fixed-length strings compare equal when one has extra blanks at the end?
sql-lock | lock table does not wait to acquire the desired lock | How do I make an explicit table lock fail right away instead of blocking when someone else holds it?
indexes-expressional | lower(col1) | How do I make case-insensitive lookups on an email column fast?
ddl-system-columns | useless as a long-term row identifier | Can I use the physical row address as a permanent id for my records?
indexes-multicolumn | indexes can have up to 32 columns | What is the maximum number of columns one index may span?
sql-createsequence | how many sequence numbers are to be preallocated | How do I make an id generator hand out numbers in blocks kept in memory so it is faster?
tutorial-window | performs a calculation across a set of table rows | How can I compute something over related rows while still keeping every row in the output, instead of collapsing them like GROUP BY does?
ddl-rowsecurity | enable row level security | How do I restrict which rows each user can see in a shared table?
backup-dump | pg_dumpall backs up each database in a given cluster | How do I back up every database on the server together with the roles?
datatype-json | does not preserve white space, does not preserve the order of object keys | Which of the two JSON column types keeps my keys in the order I wrote them?
transaction-iso | prepared to retry transactions due to serialization failures | With the strictest isolation level, what does my application code have to be ready to do?
pgtrgm | how similar the two arguments are | How can I score how close two strings are, for fuzzy matching of misspelled names?
queries-with | a with query can refer to its own output | How do I walk a tree of parent and child rows, like an org chart, in one query?
datatype-numeric | not true types, but merely a notational convenience | Is the auto-increment integer type a real data type or a shortcut for something else?
sql-copy | specifies that the file contains a header line | When bulk loading a CSV file, how do I skip the first line that has the column names?
functions-datetime | conceptually similar to the trunc function for numbers | How do I round a timestamp down to the start of its hour or month?
datatype-datetime | stored internally in utc | Does the time-zone aware timestamp type store the offset I gave it, or convert it?
routine-vacuuming | to recover or reuse disk space occupied by updated or deleted rows | Why does the database need periodic cleanup of tables at all?
runtime-config-resource | before writing to temporary disk files | Which setting controls how much memory a sort can use before it spills to disk?
explicit-locking | application-defined meanings | Can I take a lock on an arbitrary number of my own choosing, to coordinate jobs between app servers?
pgcrypto | specifically designed for hashing passwords | What should I use to store user passwords securely inside the database?
ddl-partitioning | explicitly listing which key value(s) appear in each partition | How do I split a table so that each country code goes into its own child table?
sql-createindex | without taking any locks that prevent concurrent inserts | How do I add an index to a busy production table without blocking writes?
functions-srf | generates a series of values from start to stop | How do I produce a row for every day between two dates?
datatype-enum | existing values cannot be removed from an enum type | Can I delete one of the allowed labels from a custom list-of-values type later?
sql-cluster | clustering is a one-time operation | If I physically reorder a table by an index, does it stay ordered as new rows arrive?
using-explain | rows removed by filter | How do I see how many rows a condition threw away when I look at a query plan with actual timings?
sql-do | executes an anonymous code block | Can I run a bit of procedural code once without creating a stored function?
plpgsql-trigger | telling for which operation the trigger was fired | Inside a trigger function, how do I know whether it was called for an insert, an update or a delete?
runtime-config-query | cost of a non-sequentially-fetched disk page | Which planner knob should I lower on SSDs so that index scans look cheaper?
sql-analyze | default_statistics_target | How do I make the planner gather more detailed statistics about a column's values?
sql-notify | together with an optional | Can a notification carry some data along with the channel name?
sql-prepare | only last for the duration of the current database session | Do server-side prepared statements survive after I disconnect?
mvcc-intro | reading never blocks writing and writing never blocks reading | Will a long report query stop other users from updating the rows it reads?
indexes-unique | null values in a unique column are not considered equal | Can a column with a uniqueness rule contain several empty (null) values?
functions-string | concatenates all but the first argument, with separators | How do I join several values into one string with a comma between them, skipping nulls?
datatype-character | the longest possible character string that can be stored is about 1 gb | What is the largest piece of text a single field can hold?
plpgsql-errors-and-messages | raise exception | How do I abort a stored procedure with my own error message?
functions-window | returns value evaluated at the row that is offset rows before | How can I compare each row with the previous row's value, like today's price against yesterday's?
functions-aggregate | collects all the input values, including nulls, into an array | How do I gather the values of a column for each group into a list?
"""

# Not covered by the pages above: the answer layer should say it does not know.
UNANSWERABLE = """
How do I configure replication lag alerts in Amazon RDS for my database?
What is the default port of a MongoDB server?
How do I set up a read replica with logical decoding slots on a standby in version 17?
Which Python driver should I use to connect to the database with asyncio?
How do I tune the JVM heap for Elasticsearch nodes?
How do I create a Kubernetes operator for running database clusters?
What does the psql backslash command for listing large objects print?
How do I write a foreign data wrapper in Rust?
How much does a managed database on Google Cloud SQL cost per month?
What is the syntax of the MERGE command's WHEN NOT MATCHED BY SOURCE clause?
"""


def pages() -> list[tuple[str, bytes]]:
    """(file name, HTML bytes) for every page of the corpus."""
    if not PG_DOC_DIR.is_dir():
        raise FileNotFoundError(
            f"{PG_DOC_DIR} is missing: install postgresql-doc-15 (make bench-deps does)"
        )
    out = []
    for name in PAGES:
        path = PG_DOC_DIR / f"{name}.html"
        out.append((path.name, path.read_bytes()))
    return out


def questions() -> tuple[Question, ...]:
    """The answerable questions, then the unanswerable ones (document and evidence empty)."""
    out = []
    for line in TABLE.strip().splitlines():
        page, evidence, text = (part.strip() for part in line.split(" | ", 2))
        out.append(Question(text, f"{page}.html", evidence, "natural", corpus="postgres"))
    for line in UNANSWERABLE.strip().splitlines():
        out.append(Question(line.strip(), "", "", "natural", "postgres", answerable=False))
    return tuple(out)
