package bench

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 100 * time.Millisecond},
		{"junk", 100 * time.Millisecond},
		{"0", 50 * time.Millisecond},
		{"2", 2 * time.Second},
		{" 3 ", 3 * time.Second},
		{"3600", s3MaxWait},
		{now.Add(4 * time.Second).Format(http.TimeFormat), 4 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 50 * time.Millisecond},
	} {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestStatsFields(t *testing.T) {
	var stats map[string]any
	doc := `{"active": true, "shape_count": 3, "shapes": [
		{"handle": "111-1", "disk_bytes": 10},
		{"handle": "222-2", "live_rows": 5, "log_bytes": 2048}]}`
	if err := json.Unmarshal([]byte(doc), &stats); err != nil {
		t.Fatal(err)
	}
	if k, n, ok := statsShapeCount(stats); !ok || k != "shape_count" || n != 3 {
		t.Errorf("statsShapeCount = %q %v %v", k, n, ok)
	}
	if b, ok := statsShapeBytes(stats, "222-2"); !ok || b != 2048 {
		t.Errorf("statsShapeBytes(222-2) = %v %v", b, ok)
	}
	if _, ok := statsShapeBytes(stats, "333-3"); ok {
		t.Error("statsShapeBytes found a handle that is not there")
	}
	var keyed map[string]any
	if err := json.Unmarshal([]byte(`{"shapes": {"444-4": {"disk": 7}}}`), &keyed); err != nil {
		t.Fatal(err)
	}
	if b, ok := statsShapeBytes(keyed, "444-4"); !ok || b != 7 {
		t.Errorf("statsShapeBytes keyed by handle = %v %v", b, ok)
	}
}

func TestSelectScenarios(t *testing.T) {
	all := scenarios(TinySizes())
	got, err := selectScenarios(all, []string{"S3", " s2"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range got {
		names = append(names, sc.name)
	}
	if strings.Join(names, ",") != "s2,s3" {
		t.Errorf("selected %v, want s2,s3 in run order", names)
	}
	if got, _ := selectScenarios(all, nil); len(got) != len(all) {
		t.Errorf("no selection kept %d of %d", len(got), len(all))
	}
	if _, err := selectScenarios(all, []string{"s99"}); err == nil || !strings.Contains(err.Error(), "s99") {
		t.Errorf("unknown scenario: %v", err)
	}
}
