package localstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// fixedSeqs hands the Writer the seqs already stored for the batch, in
// order. The store owns the numbering (it never leaves gaps), so SetNext
// has nothing to do.
type fixedSeqs struct {
	seqs []int64
	i    int
}

func (f *fixedSeqs) Reserve(context.Context) (int64, error) {
	if f.i >= len(f.seqs) {
		return 0, errors.New("localstore: more transactions than seqs")
	}
	f.i++
	return f.seqs[f.i-1], nil
}

func (f *fixedSeqs) SetNext(context.Context, int64) error { return nil }

// send sends one batch with a fresh Writer and records what the server
// decided, even when the Writer stops early.
func (s *Syncer) send(ctx context.Context, batch []*outTx) error {
	seqs := &fixedSeqs{}
	txs := make([][]volt.Mutation, len(batch))
	for i, t := range batch {
		seqs.seqs = append(seqs.seqs, t.seq)
		txs[i] = t.muts
	}
	sent := map[int64]bool{}
	for _, t := range batch {
		if t.sentBefore {
			sent[t.seq] = true
		}
	}
	// A transaction sent in an earlier round or process may have been
	// applied then: its replayed answer is its result, so a whole batch
	// resent after a crash is decided in one round trip.
	w, err := s.c.Writer(s.db.clientID, client.WithSeqStore(seqs), client.WithMaxBatch(len(batch)),
		client.WithSentBefore(func(seq int64) bool { return sent[seq] }))
	if err != nil {
		return err
	}
	results, sendErr := w.WriteBatch(ctx, txs)
	decided := batch[:len(results)]
	var extra *volt.MutationResult
	if sendErr != nil && len(results) < len(batch) {
		extra, sendErr = s.adopt(batch[len(results)], sendErr)
		if extra != nil {
			results = append(results, *extra)
			decided = batch[:len(results)]
		}
	}
	if err := s.record(decided, results); err != nil {
		return err
	}
	if sendErr == nil {
		s.isolate = false
	}
	return sendErr
}

// adopt turns the Writer's error for t into t's result where that is
// sound:
//   - a replayed answer to a seq this store gave t in an earlier round is
//     t's own result from an earlier delivery (lost response, crash);
//   - a request refused as a whole (4xx) applied nothing: with t alone in
//     the request, t is rejected locally ("invalid"); otherwise the next
//     rounds send one transaction at a time to find the culprit. The
//     undecided seqs are given back, since none reached the server.
func (s *Syncer) adopt(t *outTx, err error) (*volt.MutationResult, error) {
	var se *client.SeqError
	if errors.As(err, &se) {
		switch {
		case errors.Is(err, client.ErrSeqReused) && t.sentBefore:
			r := se.Result
			return &r, nil
		case errors.Is(err, client.ErrOutOfOrder) && t.sentBefore:
			// applied so long ago that the receipt was pruned
			return &volt.MutationResult{Seq: t.seq, Status: volt.StatusAccepted, LSN: "1"}, nil
		}
		return nil, fmt.Errorf("localstore: client %s: the server's queue is ahead of this store: %w", s.db.clientID, err)
	}
	var he *client.Error
	if errors.As(err, &he) && !errors.Is(err, client.ErrUnauthorized) {
		if err := s.giveBackSeqs(t.seq); err != nil {
			return nil, err
		}
		if s.isolate || t.seq == 0 {
			return &volt.MutationResult{Seq: t.seq, Status: volt.StatusRejected, Code: volt.CodeInvalid, Message: he.Error()}, nil
		}
		s.isolate = true
		return nil, err
	}
	return nil, err
}

// giveBackSeqs forgets the seqs from seq on: they never reached the
// server.
func (s *Syncer) giveBackSeqs(seq int64) error {
	return s.db.update(func(tx *Tx) error {
		if _, err := tx.tx.Exec(`UPDATE _volt_txns SET seq = NULL WHERE state = 'pending' AND seq >= ?`, seq); err != nil {
			return err
		}
		_, err := tx.tx.Exec(`UPDATE _volt_meta SET v = ? WHERE k = 'next_seq'`, seq)
		return err
	})
}

// record stores the server's decisions in one transaction: accepted
// transactions wait for their echo, rejected ones are rolled back with
// the unsent transactions that depend on them.
func (s *Syncer) record(batch []*outTx, results []volt.MutationResult) error {
	if len(batch) == 0 {
		return nil
	}
	return s.db.update(func(tx *Tx) error {
		rejected := map[int64]Rollback{}
		for i, r := range results {
			t := batch[i]
			switch r.Status {
			case volt.StatusAccepted:
				lsn, _ := strconv.ParseInt(r.LSN, 10, 64)
				if _, err := tx.tx.Exec(`UPDATE _volt_txns SET state = 'accepted', txid = ?, lsn = ? WHERE ltx = ?`,
					int64(r.Txid), lsn, t.ltx); err != nil {
					return err
				}
			case volt.StatusRejected:
				rejected[t.ltx] = Rollback{Seq: t.seq, Code: r.Code, Message: r.Message}
			}
		}
		if len(rejected) > 0 {
			if err := s.db.rollback(tx, rejected); err != nil {
				return err
			}
		}
		return clearEchoed(tx)
	})
}
