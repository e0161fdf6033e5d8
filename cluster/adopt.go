package cluster

// maxAdoptSlots bounds the sockets every worker inherits for adoption; with
// more slots than this, orphaned slots wait for their own worker.
const maxAdoptSlots = 64

// adoptable reports whether workers are given every slot's socket, to
// accept for a slot whose worker is down.
func (l *loop) adoptable() bool {
	return len(l.sockets) > 1 && len(l.sockets) <= maxAdoptSlots
}

// rebalance makes sure that every slot that has been served and now has no
// ready worker (it died, it is waiting out its restart delay) is accepted
// for by a ready worker of another slot, and that a slot whose own worker is
// ready again is released. Without it, the connections the kernel hashes to
// an orphaned slot's socket would wait there until its worker is back.
func (l *loop) rebalance() {
	if l.stopping || !l.adoptable() {
		return
	}
	defer l.tellAdoptions()
	usable := func(c *child) bool { return c != nil && c.ready && !c.stopped && !c.gone }
	for _, s := range l.adoptionSlots() {
		healthy := usable(s.cur)
		if a := s.adopter; a != nil && (healthy || !usable(a)) {
			s.adopter = nil
			a.adopted--
			l.emit(Event{Kind: EventReleased, Slot: s.id, Pid: a.pid})
			if healthy {
				l.log.Info("slot served by its own worker again", "worker", s.id, "worker_pid", s.cur.pid, "adopter_pid", a.pid)
			}
		}
		if healthy || s.adopter != nil || !s.served {
			continue
		}
		var best *child
		for _, t := range l.slots {
			if t != s && usable(t.cur) && (best == nil || t.cur.adopted < best.adopted) {
				best = t.cur
			}
		}
		if best == nil {
			l.log.Warn("slot has no worker and no healthy worker can adopt it; its connections wait", "worker", s.id)
			continue
		}
		s.adopter = best
		best.adopted++
		l.emit(Event{Kind: EventAdopted, Slot: s.id, Pid: best.pid})
		if l.activeSlot(s.id) != s {
			l.log.Info("worker adopts a removed slot's socket for good", "worker", s.id, "adopter", best.slot.id, "adopter_pid", best.pid)
			continue
		}
		l.log.Warn("worker adopts orphaned slot until its worker is back", "worker", s.id, "adopter", best.slot.id, "adopter_pid", best.pid)
	}
}
