package driver

// Intrusive doubly linked lists: a connection or waiter carries its own
// links, so moving it between lists on every checkout allocates nothing.

type connLinks struct{ prev, next *physConn }

// connList is a list of physical connections, front = most recently added.
// sel picks which of a connection's links the list uses, so one connection
// can sit in its pool's idle list and in the budget-wide LRU at once.
type connList struct {
	front, back *physConn
	n           int
	sel         func(*physConn) *connLinks
}

func (l *connList) pushFront(c *physConn) {
	lk := l.sel(c)
	lk.prev, lk.next = nil, l.front
	if l.front != nil {
		l.sel(l.front).prev = c
	} else {
		l.back = c
	}
	l.front = c
	l.n++
}

func (l *connList) remove(c *physConn) {
	lk := l.sel(c)
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

func lruLinks(c *physConn) *connLinks  { return &c.lru }
func poolLinks(c *physConn) *connLinks { return &c.pidle }

type waitLinks struct{ prev, next *waiter }

// waitList is a FIFO of waiters: pushBack, oldest at front.
type waitList struct {
	front, back *waiter
	n           int
	sel         func(*waiter) *waitLinks
}

func (l *waitList) pushBack(w *waiter) {
	lk := l.sel(w)
	lk.prev, lk.next = l.back, nil
	if l.back != nil {
		l.sel(l.back).next = w
	} else {
		l.front = w
	}
	l.back = w
	l.n++
}

func (l *waitList) remove(w *waiter) {
	lk := l.sel(w)
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

func allLinks(w *waiter) *waitLinks { return &w.all }
func ownLinks(w *waiter) *waitLinks { return &w.own }
