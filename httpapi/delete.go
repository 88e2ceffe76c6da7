package httpapi

import (
	"net/http"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shapecache"
)

// deleteShape answers DELETE /v1/shape?handle=… or ?table=…[&where=…]:
// the shape is removed and its clients get a 409 on their next request.
func (s *Server) deleteShape(w http.ResponseWriter, r *http.Request) {
	if !s.Config.AllowShapeDeletion {
		writeError(w, r, http.StatusMethodNotAllowed, map[string]string{"message": "DELETE not allowed"})
		return
	}
	q := r.URL.Query()
	handle := q.Get(volt.ParamHandle)
	if handle == "" && q.Get(volt.ParamTable) == "" {
		writeInvalid(w, r, fieldErrors{"handle": {"can't be blank when shape definition is missing"}})
		return
	}
	var target *shapecache.Entry
	if q.Get(volt.ParamTable) != "" {
		req := &request{}
		errs := fieldErrors{}
		parseDefinition(q, req, errs)
		if len(errs) > 0 {
			writeInvalid(w, r, errs)
			return
		}
		sh, ok := s.resolveShape(w, r, req)
		if !ok {
			return
		}
		e, found := s.Cache.Find(sh)
		if found && handle != "" && e.Handle != handle {
			writeError(w, r, http.StatusBadRequest, map[string]string{"message": "The specified shape definition and handle do not match. Please ensure the shape definition is correct or omit the shape handle from the request to obtain a new one."})
			return
		}
		target = e
	} else if e, ok := s.Cache.Lookup(handle); ok {
		target = e
	}
	if target == nil || !s.Cache.Delete(target.Handle) {
		writeError(w, r, http.StatusNotFound, map[string]string{"message": "No existing shape found"})
		return
	}
	w.Header().Set("cache-control", "no-cache")
	w.WriteHeader(http.StatusAccepted)
}
