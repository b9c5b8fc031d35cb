"""``onebox bench``: a load generator for a running Onebox or any OpenAI-compatible server.

Modes: ``chat`` (``/v1/chat/completions``, streamed or not), ``ingest`` (upload generated
documents to a collection and time them until indexed) and ``retrieve``
(``POST /api/search``).

How it measures, and why (these are what made earlier numbers disagree with ``hey``):

* **Timestamps are taken when bytes arrive**: the client is an asyncio protocol that reads
  the clock first thing in ``data_received``, before any parsing, so a slow parser or a
  busy event loop in the client does not add to the time to first token.
* **Open loop by default**: with ``--rate`` requests start on a schedule (Poisson, or
  evenly spaced with ``--arrival uniform``) whatever the server does, and each latency is
  counted from the *scheduled* start. A closed loop (``--concurrency`` alone: N clients
  back to back) stops sending while the server stalls, so the requests that would have
  queued behind a stall are never sent and never measured (coordinated omission).
* ``--arrival burst`` reproduces ``hey -c C -q Q``: C workers that each send every 1/Q s,
  all on the same ticks, so requests arrive in bursts of C. That is far harsher on a
  server's tail latency than the same rate spread out, which is why ``hey`` reports much
  higher p95/p99 than an evenly paced generator at the same requests per second.
* The generator reports how late it sent requests against its schedule (``send lag``):
  on a small machine a load generator competes with the server for CPU, and a late send
  is latency the server never caused. A warning is printed when it was significant.
"""
