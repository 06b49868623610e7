package ipam

// offsetSet is the set of address offsets in use in one family of one
// pool. It is a treap ordered by offset and augmented with subtree sizes,
// so that the lowest free offset is found by one walk from the root
// (O(log n) expected, n = offsets in use) and memory is proportional to
// the addresses in use, never to the size of the pool.
//
// Node priorities are a hash of the key rather than random numbers: the
// shape is then a pure function of the set's contents, which keeps the
// allocator free of hidden state and reproducible between runs.
type offsetSet struct {
	root *treapNode
}

// treapNode is one address in use. It also carries the address's holders
// (sorted by key, so messages and iteration never depend on arrival
// order): keeping them here rather than in a map keyed by address saves
// memory and avoids the bursts of work a growing hash map causes.
type treapNode struct {
	key         u128
	left, right *treapNode
	size        uint64
	holders     []*svcRecord
}

func (n *treapNode) sz() uint64 {
	if n == nil {
		return 0
	}
	return n.size
}

func (n *treapNode) fix() { n.size = 1 + n.left.sz() + n.right.sz() }

// prio mixes both words (splitmix64 finaliser) so that consecutive
// offsets, the common case when a pool fills up, get unrelated priorities
// and the treap stays balanced.
func prio(k u128) uint64 {
	z := k.lo ^ (k.hi * 0x9e3779b97f4a7c15)
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *offsetSet) len() uint64 { return s.root.sz() }

func (s *offsetSet) has(k u128) bool { return s.find(k) != nil }

func (s *offsetSet) find(k u128) *treapNode {
	n := s.root
	for n != nil {
		switch k.cmp(n.key) {
		case 0:
			return n
		case -1:
			n = n.left
		default:
			n = n.right
		}
	}
	return nil
}

// insert returns the node for k and whether it had to be created.
func (s *offsetSet) insert(k u128) (*treapNode, bool) {
	if n := s.find(k); n != nil {
		return n, false
	}
	n := &treapNode{key: k, size: 1}
	s.root = treapInsert(s.root, n, prio(k))
	return n, true
}

func treapInsert(n, nn *treapNode, p uint64) *treapNode {
	if n == nil {
		return nn
	}
	if p > prio(n.key) {
		nn.left, nn.right = treapSplit(n, nn.key)
		nn.fix()
		return nn
	}
	if nn.key.less(n.key) {
		n.left = treapInsert(n.left, nn, p)
	} else {
		n.right = treapInsert(n.right, nn, p)
	}
	n.fix()
	return n
}

// treapSplit separates keys below k from keys above it; k itself is
// known to be absent.
func treapSplit(n *treapNode, k u128) (*treapNode, *treapNode) {
	if n == nil {
		return nil, nil
	}
	if n.key.less(k) {
		l, r := treapSplit(n.right, k)
		n.right = l
		n.fix()
		return n, r
	}
	l, r := treapSplit(n.left, k)
	n.left = r
	n.fix()
	return l, n
}

// remove reports whether k was present.
func (s *offsetSet) remove(k u128) bool {
	if !s.has(k) {
		return false
	}
	s.root = treapRemove(s.root, k)
	return true
}

func treapRemove(n *treapNode, k u128) *treapNode {
	switch k.cmp(n.key) {
	case -1:
		n.left = treapRemove(n.left, k)
	case 1:
		n.right = treapRemove(n.right, k)
	default:
		return treapMerge(n.left, n.right)
	}
	n.fix()
	return n
}

// treapMerge joins two treaps where every key of l is below every key of r.
func treapMerge(l, r *treapNode) *treapNode {
	if l == nil {
		return r
	}
	if r == nil {
		return l
	}
	if prio(l.key) > prio(r.key) {
		l.right = treapMerge(l.right, r)
		l.fix()
		return l
	}
	r.left = treapMerge(l, r.left)
	r.fix()
	return r
}

// each visits the nodes in ascending order.
func (s *offsetSet) each(fn func(*treapNode)) { treapEach(s.root, fn) }

func treapEach(n *treapNode, fn func(*treapNode)) {
	for n != nil {
		treapEach(n.left, fn)
		fn(n)
		n = n.right
	}
}

// firstFree returns the lowest offset not in the set, and whether it is
// below limit. At each node the left subtree holds distinct offsets in
// [lo, key); it has no gap exactly when its size equals key-lo, and only
// then can the answer lie to the right.
func (s *offsetSet) firstFree(limit u128) (u128, bool) {
	var lo u128
	n := s.root
	for n != nil {
		if u128From64(n.left.sz()) == n.key.sub(lo) {
			lo = n.key.inc()
			n = n.right
		} else {
			n = n.left
		}
	}
	return lo, lo.less(limit)
}
