package localstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync/atomic"

	"modernc.org/sqlite"
)

// writeState is what the views' triggers learn from Go rather than from
// a table, through SQL functions of the DB's own driver: the local
// transaction that Update runs (volt_ltx()) and the next outbox id
// (volt_id()). Keeping them in a row would make every Update write that
// row's page to the WAL.
type writeState struct {
	ltx  atomic.Int64 // the local transaction of the running Update; 0 outside
	used atomic.Bool  // volt_ltx() was called in it
	id   atomic.Int64 // the last outbox id handed out
}

// errOutsideUpdate is the error of a write to a view outside Update.
var errOutsideUpdate = errors.New("localstore: the views are written inside DB.Update only")

func (ws *writeState) start(ltx int64) {
	ws.used.Store(false)
	ws.ltx.Store(ltx)
}

func (ws *writeState) stop() { ws.ltx.Store(0) }

// driver returns a driver whose connections have volt_ltx() and
// volt_id(). It is the DB's own: the functions answer for this store.
// (The driver package keeps what is registered for the life of the
// process: a few bytes per Open.)
func (ws *writeState) driver() (*sqlite.Driver, error) {
	drv := &sqlite.Driver{}
	err := drv.RegisterScalarFunction("volt_ltx", 0, func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
		ltx := ws.ltx.Load()
		if ltx == 0 {
			return nil, errOutsideUpdate
		}
		ws.used.Store(true)
		return ltx, nil
	})
	if err != nil {
		return nil, err
	}
	err = drv.RegisterScalarFunction("volt_id", 0, func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
		return ws.id.Add(1), nil
	})
	return drv, err
}

// connector opens connections of the DB's driver for sql.OpenDB.
type connector struct {
	drv *sqlite.Driver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }
