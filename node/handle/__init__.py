"""The Handle native protocol (RFC 3652) on TCP and UDP: the door the national recursive
resolvers and the Handle/industrial SDKs use.

- :mod:`node.handle.codec`: the wire format (envelope, header, bodies, value and site
  records), pure and bounded.
- :mod:`node.handle.service`: one request → one answer through the application core,
  with the encoded answer cached on the core's entry.
- :mod:`node.handle.certify`: certified answers (the message credential, signed with
  the node's Handle protocol RSA key).
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
  protocol error (a request's credential is not read: resolution is anonymous). Answers
  carry an empty credential (four zero bytes), except certified ones.
- **Certified answers.** A request with the certified flag (CT) gets the flag back and
  a credential (RFC 3652 §2.2.4): version 0, options 0, signer ``<0.NA/<node prefix>,
  1>`` (the HS_SITE value publishing the key), type ``HS_SIGNED``, digest ``SHA-256``
  and an RSA PKCS#1 v1.5 signature with the node's key (``handle-rsa.pem``, 2048 bits,
  whose public half is in the site info's server record as ``RSA_PUB_KEY``). What is
  signed follows the Java library, which every deployed client derives from: the
  header and body (the RFC), preceded from 2.6 on by major and minor version, the
  suggested version (2.8 on), session id, request id and the signer index in the role
  of the library's session counter; 2.6's overlapping writes are reproduced. SHA-256
  for every version (the Java server falls back to SHA-1 below 2.7). Errors and site
  info are signed too (the Java client checks the signature of whatever comes back to
  a CT request); RC_SERVER_TOO_BUSY and protocol errors for unreadable messages are
  not. Signing happens per request (the request id is signed) on the worker pool.
- **Expiration.** Answers expire twelve hours after they are made (the Java library's
  default for messages; its resolver refuses an answer whose expiration time has
  passed, which a zero would be).
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
  the answer is and clients fetch it over TCP. A request may arrive the same way
  (fragments with the truncation flag, sequence numbers and the whole length); it is
  put together within bounded memory and time (:mod:`node.handle.reassembly`) and
  answered like one sent whole.
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
  advertised address (``handle_site_address``, else the listen address; IPv4 in the
  last 4 of 16 octets, the rest zero, as the Java library reads it) with query
  interfaces on TCP and UDP at the bound port and the public key of certified answers.
  The HTTP door is not advertised: it speaks REST, not Handle messages over HTTP.
- **HS_SITE on prefix handles.** Resolving ``0.NA/<prefix>`` over this door (a prefix
  handle: this node stores only those of prefixes it serves) adds an HS_SITE value,
  the site info record, at index 1 (the lowest free index if 1 is taken; none when the
  record stores its own HS_SITE), so a resolver looking for a prefix's service finds
  this node. Filters see it like a stored value. It is never stored: gRPC and REST
  answer the stored record, which knows nothing of this door's port and address.
"""
