package proxy

import "container/list"

// lru is a fixed-capacity map that forgets its least recently used entry
// when full, so that state keyed by what clients send (addresses, user
// names) stays bounded however many keys an attacker makes up. It is not
// safe for concurrent use; the owner locks.
type lru[V any] struct {
	max   int
	order *list.List // of *lruItem[V], most recently used first
	items map[string]*list.Element
}

type lruItem[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

// get returns the value for key and marks it used, or nil.
func (c *lru[V]) get(key string) *V {
	e, ok := c.items[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return &e.Value.(*lruItem[V]).val
}

// put returns the value for key, adding a zero value (and forgetting the
// oldest entry if the map is full) when key is new.
func (c *lru[V]) put(key string) *V {
	if v := c.get(key); v != nil {
		return v
	}
	if c.order.Len() >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruItem[V]).key)
	}
	it := &lruItem[V]{key: key}
	c.items[key] = c.order.PushFront(it)
	return &it.val
}

func (c *lru[V]) len() int { return c.order.Len() }
