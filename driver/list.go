package driver

// An intrusive doubly linked list: an element carries its own links, so
// moving a connection or a waiter between lists on every checkout
// allocates nothing. sel picks which of an element's links a list uses, so
// one connection can sit in its pool's idle list and in its server's LRU
// list at once.

type links[T any] struct{ prev, next *T }

type list[T any] struct {
	front, back *T
	n           int
	sel         func(*T) *links[T]
}

func (l *list[T]) pushFront(e *T) {
	lk := l.sel(e)
	lk.prev, lk.next = nil, l.front
	if l.front != nil {
		l.sel(l.front).prev = e
	} else {
		l.back = e
	}
	l.front = e
	l.n++
}

func (l *list[T]) pushBack(e *T) {
	lk := l.sel(e)
	lk.prev, lk.next = l.back, nil
	if l.back != nil {
		l.sel(l.back).next = e
	} else {
		l.front = e
	}
	l.back = e
	l.n++
}

func (l *list[T]) remove(e *T) {
	lk := l.sel(e)
	if lk.prev != nil {
		l.sel(lk.prev).next = lk.next
	} else {
		l.front = lk.next
	}
	if lk.next != nil {
		l.sel(lk.next).prev = lk.prev
	} else {
		l.back = lk.prev
	}
	lk.prev, lk.next = nil, nil
	l.n--
}

// connList: physical connections, most recently added at the front.
type connList = list[physConn]

// waitList: waiters, oldest at the front (pushBack).
type waitList = list[waiter]

type connLinks = links[physConn]
type waitLinks = links[waiter]

func lruLinks(c *physConn) *connLinks  { return &c.lru }
func poolLinks(c *physConn) *connLinks { return &c.pidle }
func allLinks(w *waiter) *waitLinks    { return &w.all }
func ownLinks(w *waiter) *waitLinks    { return &w.own }
