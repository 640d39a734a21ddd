// Package web is a node's web UI: one page, embedded in the binary, that
// shows the latest operations with their stage graphs, one operation's
// tasks, undo order and history, and the chain's blocks and validators.
//
// The page talks to the node's JSON-RPC API on the address it was loaded
// from: calls go over HTTP POST to "/", and the live views (the newBlocks
// and operationEvents subscriptions) over a WebSocket on "/". The node's
// RPC endpoint serves both and hands every other GET to [Handler], so the
// UI needs no server of its own: plug Handler() into the node's Options.UI.
//
// The assets are plain HTML, CSS and JavaScript with no build step and no
// third-party code. Everything shown that comes from users (operation
// names, outputs, failure reasons) is set as text, never parsed as markup,
// and the handler sends a Content-Security-Policy that allows only the
// page's own script and style, so a hostile output cannot run script even
// if a future change forgot that rule.
package web
