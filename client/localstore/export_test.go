package localstore

// WatchSignalled returns how many of db's watches have a change signalled
// that they have not picked up yet.
func WatchSignalled(db *DB) int {
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	n := 0
	for w := range db.watchers {
		n += len(w.ch)
	}
	return n
}

// Watchers returns how many watches are registered on db.
func Watchers(db *DB) int {
	db.watchMu.Lock()
	defer db.watchMu.Unlock()
	return len(db.watchers)
}
