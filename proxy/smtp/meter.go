package smtp

// Message results, as MessageMeter.Message is told them: by the first
// digit of the reply the client got to its final dot (RFC 5321 section
// 4.2.1).
const (
	MessageSent     = "sent"     // 2xx: the upstream took it
	MessageDeferred = "deferred" // 4xx: try again later (upstream, or the relay broke)
	MessageRejected = "rejected" // 5xx: refused for good (upstream, or too big)
)

// MessageResults are every result MessageMeter.Message is told.
var MessageResults = []string{MessageSent, MessageDeferred, MessageRejected}

// MessageMeter is told of every message a client sent through DATA, for
// metrics: its result and the bytes read from the client. It is called
// once per message and must not block.
type MessageMeter interface {
	Message(result string, size int64)
}

type nopMessages struct{}

func (nopMessages) Message(string, int64) {}

// messageResult names a reply code for MessageMeter.
func messageResult(code int) string {
	switch code / 100 {
	case 2:
		return MessageSent
	case 4:
		return MessageDeferred
	}
	return MessageRejected
}
