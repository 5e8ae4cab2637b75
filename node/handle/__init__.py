"""The Handle native protocol (RFC 3652) on TCP and UDP: the door the national recursive
resolvers and the Handle/industrial SDKs use.

- :mod:`node.handle.codec`: the wire format (envelope, header, bodies, value and site
  records), pure and bounded.
- :mod:`node.handle.service`: one request → one answer through the application core,
  with the encoded answer cached on the core's entry.
- :mod:`node.handle.server`: the sockets (a UDP thread, an asyncio loop for TCP, a small
  worker pool for answers that need the store).

Decisions where the RFC and deployed clients differ (we follow the clients)
-----------------------------------------------------------------------------
- **Versions.** Requests of major version 2 and any minor version are read the same
  way (2.1 to 2.11 share the message layout for resolution and site info); the answer
  speaks the request's minor version, capped at 2.11. Clients from 2.8 on put a
  *suggested* version in the envelope: the major in the two low bits of the first
  MessageFlag octet, the minor in the second octet, which the RFC leaves reserved; we
  read it without acting on it and suggest 2.11 back to such clients only.
- **Value timestamps** are 4 octets (seconds since 1970, unsigned) as the Java
  implementation reads and writes them.
- **authBytes.** The industrial-identifier SDKs append a length-prefixed ``authBytes``
  field after a resolution request's type list (four zero bytes when empty). It is
  accepted and ignored: resolution over this door is anonymous, so only public values
  are ever answered, whatever the public-only flag says (the flag is echoed).
- **Keep-connection.** Pooling SDKs reuse a TCP connection without setting the
  keep-connection flag, so a connection stays open after every answer until
  ``handle_idle_timeout_seconds`` pass without a complete request, whatever the flag.
  The flag is echoed.
- **Credential section.** A request may end right after its body (older clients) or
  with a 4-byte credential length and exactly that many bytes; anything else is a
  protocol error. Answers carry an empty credential (four zero bytes).
- **Authoritative.** This node is the primary for its prefix and its cache is coherent
  with its store (see docs/ARCHITECTURE.md "Caching"), so every answer is
  authoritative (AT set) and an AT request is answered from the same cache.
- **Request digest.** With the RD flag the answer body starts with SHA-256 (algorithm
  octet 3) of the request's header and body, as clients from 2.1 on verify it.
- **UDP truncation.** An answer longer than one 512-byte datagram is sent in
  sequence-numbered fragments with the truncation flag set and the whole length in
  each envelope (the RFC's truncation; the Java client reassembles). Beyond
  ``handle_udp_max_answer_bytes`` only the first fragment is sent, so a spoofed
  60-byte request can never reflect more than that bound; its envelope says how long
  the answer is and clients fetch it over TCP. A request must fit one datagram; a
  fragmented request gets a protocol error (use TCP).
- **Type filters** match exactly (as gRPC's ``types``); a requested type ending in
  ``.`` selects every type that starts with it (``URL.`` → ``URL.mirror``). Indexes and
  types select their union; a filter that matches nothing is RC_VALUES_NOT_FOUND (200).
- **Errors** come from the one table in :mod:`node.errors` (its Handle codes): 100 not
  found, 102 invalid handle (also a handle that is not UTF-8, and the SDKs' heartbeat
  resolution of ``0``, which is answered at once), 200 values not found, 301 not served
  here (the message names the prefix; no referral values, the node does not know who
  serves it), 3 too busy (worker backlog full), 4 protocol error (malformed, truncated
  or oversized messages), 5 operation not supported. A message that carries a response
  code (an answer, possibly spoofed) is never answered.
- **Site info.** OC_GET_SITEINFO answers one primary site with one server: the
  advertised address (``handle_site_address``, else the listen address) with query
  interfaces on TCP and UDP at the bound port, no public key (certified answers are
  not implemented).
"""
