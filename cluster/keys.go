package cluster

import (
	"crypto/sha256"
	"encoding/hex"
)

// keys names what the cluster keeps in Redis. Every key of a session has
// the session id as its hash tag ({id}), so that a script touching its
// metadata and its inbox runs on one Redis Cluster slot.
type keys struct{ prefix string }

// meta is the session's metadata (a hash).
func (k keys) meta(id string) string { return k.prefix + ":s:{" + id + "}" }

// inbox holds the messages posted to the session and not yet done (a
// stream).
func (k keys) inbox(id string) string { return k.prefix + ":s:{" + id + "}:in" }

// metaPattern matches every session's metadata key, and no inbox.
func (k keys) metaPattern() string { return k.prefix + ":s:{*}" }

// token finds a session by its resume token's hash.
func (k keys) token(hash string) string { return k.prefix + ":t:{" + hash + "}" }

// identity lists the sessions of one identity on one handler (a set).
func (k keys) identity(scope, identity string) string {
	return k.prefix + ":i:{" + Hash(scope+"\x00"+identity) + "}"
}

// node is the channel an instance listens on.
func (k keys) node(instance string) string { return k.prefix + ":n:" + instance }

// all is the channel every instance listens on.
func (k keys) all() string { return k.prefix + ":all" }

// Hash is what Redis keeps of a secret (a resume token): its SHA-256,
// hex. Whoever reads Redis learns nothing that re-attaches a stream.
func Hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
