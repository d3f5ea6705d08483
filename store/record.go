package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pwRecord is how a password is stored under passwords/<mailbox>/<id>.
//
// The stored value is len(hash) as one byte, the hash, then the JSON of the
// other fields. Verify compares the hash of every record of a mailbox (and
// of padding records) on every login; keeping it at a fixed place lets it do
// so without decoding JSON, which would make a login cost a hundred times
// more and would add work that depends on the records' contents.
type pwRecord struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Scopes   []string  `json:"scopes"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Scheme   string    `json:"scheme"` // how Hash was computed: hashScheme
	Hash     []byte    `json:"-"`
	LastUsed *LastUse  `json:"last_used,omitempty"`
}

var errCorrupt = errors.New("corrupt password record")

func encodeRecord(r *pwRecord) ([]byte, error) {
	if len(r.Hash) == 0 || len(r.Hash) > 255 {
		return nil, fmt.Errorf("password hash of %d bytes", len(r.Hash))
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	out := append([]byte{byte(len(r.Hash))}, r.Hash...)
	return append(out, body...), nil
}

// recordHash returns the hash stored in v without copying or decoding, or
// nil if v is malformed.
func recordHash(v []byte) []byte {
	if len(v) == 0 || len(v) < 1+int(v[0]) {
		return nil
	}
	return v[1 : 1+int(v[0])]
}

// decodeRecord parses a stored value; the result does not alias v (bbolt
// values are valid only inside their transaction).
func decodeRecord(v []byte) (*pwRecord, error) {
	h := recordHash(v)
	if h == nil {
		return nil, errCorrupt
	}
	r := &pwRecord{Hash: append([]byte(nil), h...)}
	if err := json.Unmarshal(v[1+len(h):], r); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return r, nil
}

func putRecord(b *bolt.Bucket, r *pwRecord) error {
	v, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(r.ID), v)
}

// putJSON stores v as JSON under key.
func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
