// Package consensus is sagachain's agreement on one chain of blocks: the
// round-based protocol of DESIGN §9 (Algorithm 1 of Buchman, Kwon and
// Milosevic, "The latest gossip on BFT consensus", with QBFT's proof of lock
// carried in re-proposals).
//
// # The core
//
// Core is the protocol for one validator as a pure state machine, in the
// style of etcd raft: it reads no clock, starts no goroutine and does no
// I/O, and calls nothing. A driver owns the timers, the network, the disk
// and the ledger, and feeds the core these inputs:
//
//   - Start, when the node has something to propose (DESIGN §5: no empty
//     blocks) and after a restart;
//   - Step, with a Proposal or a ledger.Vote from the network;
//   - Timeout, with a TimeoutInfo the core asked for earlier;
//   - Proposed, with the block the core asked for in
//     Ready.ProposalRequest, built by App.ProposeBlock;
//   - Validated, with App.ValidateBlock's verdict on a block the core asked
//     about in Ready.Validations;
//   - SetDown, with the validators the committed state marks down, after
//     every commit and for every new core (Host.ProposerDown).
//
// Each returns a Ready, which the driver handles completely, in order,
// before the next call: write Ready.Commit (block, certificate and state
// in one synced write), persist and sync Ready.Persist, broadcast
// Ready.Messages, schedule Ready.Timeouts, gossip Ready.Evidence, then serve
// its requests to the App. The App reads the store and the clock, so it is
// the driver that calls it; the core only asks and waits. Persisting
// before sending is what keeps a restarted validator from signing two
// different blocks for one height, round and step: PersistedState holds the
// last signed proposal, prevote and precommit, and a core built from it
// re-sends a stored signature instead of signing anything else at that
// height and round.
//
// Choices the design left open:
//
//   - The core applies its own proposal and votes at once, when it makes
//     them; Ready.Messages are for the other validators. So a lone validator
//     proposes, prevotes, precommits and decides within Start and the
//     answers to its requests, with no timer firing, through the same code
//     as a network of n.
//   - After a decision the core moves to the next height by itself but
//     waits there (StepNewHeight) without starting round 0: the driver calls
//     Start once its mempool holds an entry, or the core starts on its own
//     when a valid message of the new height arrives from another validator.
//   - Messages of other heights are ignored. A driver that sees a message or
//     a certificate above its height fetches the blocks by block sync,
//     writes them, and builds a new Core at the next height with its
//     persisted state.
//   - The f+1 round skip keeps one number per validator, the highest round
//     it sent a valid message for; it fires whenever f+1 messages for one
//     round above ours would, and starts the highest round f+1 validators
//     have reached. Messages are stored up to a few rounds ahead of the
//     current one, so a Byzantine validator cannot fill memory with rounds.
//   - Only the first proposal of a round counts; later different ones from
//     the same proposer are dropped. Conflicting votes of one validator at
//     one height, round and type become ledger.Evidence, once.
//   - A round whose proposer the committed state reports down waits
//     Config.TimeoutProposeDown for its proposal instead of TimeoutPropose,
//     and moves on as soon as a quorum precommitted nil there instead of
//     waiting TimeoutPrecommit: with one validator of four dead, every
//     fourth height would otherwise wait a full propose and precommit
//     timeout. Only timers change; votes, validity and what is signed do
//     not, so safety does not depend on the report being right.
//   - Core.Republish returns this validator's latest proposal and votes of
//     the current height, for the driver to publish again every few hundred
//     milliseconds (DESIGN §9).
//
// Valid(v) is split. On arrival, before a proposal is kept or voted on, the
// core checks that its block is whole: the entries root and last-commit
// hash match the entries and certificate carried, and the proposer's
// signature holds (the proposal's signature covers only the block hash,
// which covers only the header, so a relay could otherwise pair a genuine
// header with another body). A copy that fails is refused as an invalid
// message, so the genuine proposal that follows still counts. The core then
// checks the chain id, height, that the proposer is the proposer of the
// round the block was built in (Header.Round), and that a fresh proposal
// carries a block of its own round and a re-proposal one built no later
// than its POL round; App.ValidateBlock checks the rest against the chain
// (parent, time, last certificate, entries, derived records). The App's
// verdict is asked for once per block hash and height, which now stands for
// the whole block, and the core waits for it before prevoting (the propose
// timeout still moves it on). A verdict wrapping ErrTransient (a block time
// ahead of the local clock) holds only until the next round starts; the
// block is judged again when a later round needs it. A decision carries the
// very instance the core checked and kept.
package consensus
