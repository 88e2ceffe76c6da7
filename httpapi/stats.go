package httpapi

import (
	"encoding/json"
	"net/http"
)

// stats answers GET /v1/stats: the number of shapes, open logs and active
// snapshots; with ?disk=true the bytes the shape store takes on disk
// (walks every shape's files); with ?handle=H one shape's rows, messages
// (what a new client downloads) and disk bytes. It needs the API secret
// when one is configured, and with read rules (it names other users'
// shapes) it needs it always.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if !secretOK(r, s.Config.Secret) {
		writeError(w, r, http.StatusUnauthorized, map[string]string{"message": "Unauthorized - Invalid API secret"})
		return
	}
	if s.ReadAuth != nil && !s.secretPresented(r) {
		writeError(w, r, http.StatusForbidden, map[string]string{"message": "GET /v1/stats needs the API secret", "code": "forbidden"})
		return
	}
	q := r.URL.Query()
	var body any
	if h := q.Get("handle"); h != "" {
		e, ok := s.Cache.Lookup(h)
		if !ok {
			writeError(w, r, http.StatusNotFound, map[string]string{"message": "No shape with handle " + h})
			return
		}
		body = s.Cache.ShapeStats(e)
	} else {
		body = s.Cache.Stats(q.Get("disk") == "true")
	}
	b, _ := json.Marshal(body)
	w.Header().Set("content-type", "application/json")
	w.Header().Set("cache-control", "no-store")
	_, _ = w.Write(b)
}
