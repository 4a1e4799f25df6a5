package cluster

import (
	"context"
	"encoding/json"
	"strings"
)

// Operations of control messages.
const (
	// OpClose asks the owner to close the session (the admin API's DELETE).
	OpClose = "close"
	// OpPush asks the owner to write Data onto the session's stream.
	OpPush = "push"
	// OpBroadcast asks every instance to write Data onto all its streams
	// and answer the sender with OpBroadcastSent under the same ID.
	OpBroadcast = "broadcast"
	// OpBroadcastSent answers OpBroadcast: Count sessions of the
	// instance's were written to.
	OpBroadcastSent = "broadcast_sent"
	// OpReleased tells the former owner that another instance took the
	// session over at Epoch: it lets go of its copy, without ending the
	// upstream session.
	OpReleased = "released"
)

// doorbellPrefix starts the message that says a session's inbox has a
// new entry: "m <session> <previous entry> <entry> <sealed entry>". It
// is the most frequent message, so its frame is not JSON. A control
// message is sealed whole: it starts with a key id, in hex, never with
// "m ".
const doorbellPrefix = "m "

// ackedPrefix starts the message that tells an entry's poster that the
// owner deleted it: "a <session> <entry>" (see the ack script).
const ackedPrefix = "a "

// Doorbell says that session Session's inbox has a new entry, ID, posted
// after entry Prev ("" for the first). Posted is the entry itself, nil if
// it could not be read (the owner then reads the inbox).
type Doorbell struct {
	Session, Prev, ID string
	Posted            *Posted
}

func (n *Node) parseDoorbell(s string) Doorbell {
	var d Doorbell
	var rest string
	d.Session, rest, _ = strings.Cut(s, " ")
	d.Prev, rest, _ = strings.Cut(rest, " ")
	d.ID, rest, _ = strings.Cut(rest, " ")
	if rest != "" {
		d.Posted, _, _ = n.openPosted(d.Session, rest)
	}
	return d
}

// Control is a message from one instance to another.
type Control struct {
	Op    string          `json:"op"`
	ID    string          `json:"id,omitempty"`
	Epoch int64           `json:"epoch,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	Count int             `json:"count,omitempty"`
	From  string          `json:"from,omitempty"`
}

func (n *Node) decodeControl(s string) (Control, error) {
	var c Control
	b, keyID, err := n.ring.Load().open([]byte(s), controlContext)
	if err != nil {
		n.unreadable("control", keyID)
		return c, err
	}
	err = json.Unmarshal(b, &c)
	return c, err
}

// Send publishes c to instance and reports how many listened: 0 means the
// instance is gone (its subscription ended with its connection).
func (n *Node) Send(ctx context.Context, instance string, c Control) (int64, error) {
	return n.publish(ctx, n.keys.node(instance), c)
}

// Broadcast publishes c to every instance, this one included.
func (n *Node) Broadcast(ctx context.Context, c Control) (int64, error) {
	return n.publish(ctx, n.keys.all(), c)
}

func (n *Node) publish(ctx context.Context, channel string, c Control) (int64, error) {
	c.From = n.cfg.Instance
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	return n.rdb.Publish(ctx, channel, n.ring.Load().seal(b, controlContext)).Result()
}

// Listening reports whether instance is subscribed to its channel: a
// process that died has no connection, hence no subscription.
func (n *Node) Listening(ctx context.Context, instance string) (bool, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	m, err := n.rdb.PubSubNumSub(ctx, n.keys.node(instance)).Result()
	if err != nil {
		return false, err
	}
	return m[n.keys.node(instance)] > 0, nil
}
