"""A loopback simulator of the Allianz Trade API (Starlette + uvicorn), for `cobro dev` and tests.

It speaks the contract in `cobro/insurers/CONTRACT.md` over real HTTP, on the production and
the UAT paths: API key → bearer token, paginated cover search by policies with a last-update
window, cover requests (Primary, GradeCover) decided after a delay through jobs whose
`resourceUrl` is the cover (and, on request, a job-result webhook to a loopback URL), company
matching and search, and the Payment Overdues declarations (OVD, EXP, RES), counted as they
arrive (`declaration_counts()`, `GET /_sim/declarations`). Its portfolio is generated
from a seed (same seed, same portfolio), and moves "day to day" with `advance_day()`:
temporary covers expire, some limits are reduced or withdrawn, some grades move.

Fault injection, for the connector's and the sync's fault tests:
- `Faults` (constructor, `sim.faults = ...`, or `POST /_sim/faults`): rates of 500 / 429 / 503
  with Retry-After / slow responses (seeded, so a run is reproducible), a number of malformed
  cover records (always the same ones for a seed) or named ones, malformed only the first N
  times they are served, truncated pages, pages whose JSON body is cut midway, records
  repeated within a page or atop the next one, tokens that expire after N uses, or every
  token refused;
- `inject(endpoint, status, times=...)`: the next N requests to one endpoint fail in a given way;
- `expire_tokens()`: every token issued so far is now expired (token expiry mid-sync).

Every request is recorded (`sim.requests`, monotonic arrival time, endpoint, page, status), so
tests measure what the client did from the server's side.
"""
