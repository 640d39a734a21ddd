// Package p2p connects the nodes of a sagachain network and moves bytes
// between them. It knows nothing of entries, blocks or votes: the node hands it
// opaque payloads and callbacks that judge them.
//
// A Host is a libp2p host with a fixed shape suited to a small permissioned
// network: TCP only, Noise security, yamux multiplexing, an optional
// private-network pre-shared key (libp2p pnet), and no relay, NAT traversal,
// mDNS or DHT. Peers are found only through the static peer addresses of the
// configuration, which the host dials at start and redials, with bounded
// exponential backoff and jitter, whenever they drop.
//
// Identity. A node has one secp256k1 key; its peer id derives from it (PeerID),
// so the peer id of every genesis validator follows from its public key
// (PeerIDFromPubkey). A connection gater admits only the peer ids of
// Config.Allowed, checked when dialling and again after the security handshake
// has authenticated the remote key, so a node outside the list can neither
// connect nor be dialled, and therefore cannot publish, relay or receive.
// Refusals are cheap: the IP a refused peer came from is refused before the
// handshake for Config.RefusedBackoff (unless an allowed peer uses it), a
// refused peer is logged once per Config.RefusalLogInterval, a static peer
// that closes our connection at once is redialled with backoff as if the
// dial had failed, and the resource manager caps the connections per peer
// (Config.MaxConnsPerPeer).
//
// Gossip. Two gossipsub topics per chain, /sagachain/<chain-id>/entries/1 and
// /sagachain/<chain-id>/consensus/1 (Topic). Every topic has a caller-supplied
// Validator that runs before a message is delivered or forwarded, so a message
// that fails it goes no further than the first honest node; Reject verdicts
// lower the sender's gossipsub peer score, Ignore verdicts do not. A message's
// id is a hash of its topic and bytes, so the same bytes published twice, by
// one node or by two, travel once within the seen-message window
// (Config.SeenTTL). Messages carry no libp2p author or signature: payloads are
// signed by the application, and the handler's from is the peer that passed
// the message on, not necessarily its author.
//
// A publisher sends to every connected peer on the topic (flood publishing);
// a relay forwards only to its mesh, which a newly connected peer joins up to
// a gossipsub heartbeat (1 s) later, so a message relayed in that interval
// skips it. Validators that list one another in Config.Peers therefore never
// depend on relays for each other's messages.
//
// Block sync. A request/response protocol, /sagachain/<chain-id>/sync/1, with
// which a node fetches a range of records (a committed block and its
// certificate, encoded by the caller) from a peer that serves them
// (Host.ServeSync, Host.FetchRange). Responses are capped in records and bytes
// and framed with unsigned-varint length prefixes; see sync.go for the wire
// form.
package p2p
