package store

import bolt "go.etcd.io/bbolt"

// bdb is the bbolt database of a store opened with the bbolt driver, for
// tests that look at what was written.
func (s *Store) bdb() *bolt.DB { return s.be.(*boltDB).db }
