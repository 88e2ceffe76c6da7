package mutations

import (
	"context"

	"github.com/jackc/pgx/v5"
)

type checkTxKey struct{}

// withCheckTx gives the Checks run under ctx the row mutation's
// transaction.
func withCheckTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, checkTxKey{}, tx)
}

// CheckTx returns, inside a Check, the transaction of the row mutation it
// checks, for Checks that query it (Options.CheckUsesTx: such a row
// mutation is not pipelined, so the transaction is free while its Check
// runs). It is nil for a Check of a pipelined insert. A query that fails
// aborts the transaction: the Check must then reject the mutation.
func CheckTx(ctx context.Context) pgx.Tx {
	tx, _ := ctx.Value(checkTxKey{}).(pgx.Tx)
	return tx
}
