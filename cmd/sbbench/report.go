package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// machine describes where a run happened.
type machine struct {
	CPUs    int    `json:"cpus"`
	Model   string `json:"model"`
	MemMB   int64  `json:"memMB"`
	Kernel  string `json:"kernel"`
	OS      string `json:"os"`
	Go      string `json:"go"`
	SIPp    string `json:"sipp"`
	Started string `json:"started"`
}

func describeMachine(sipp string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), SIPp: sippVersion(sipp), Started: time.Now().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemMB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

func (m machine) String() string {
	return fmt.Sprintf("%d × %s, %d MB, Linux %s (%s), %s, %s", m.CPUs, m.Model, m.MemMB, m.Kernel, m.OS, m.Go, m.SIPp)
}

// histBuckets returns the cumulative bucket counts of a Prometheus
// histogram added between two scrapes, over every series of name whose
// labels contain all of match: the buckets' upper bounds in order (+Inf
// last) and the count at or below each.
func histBuckets(before, after map[string]float64, name string, match ...string) (les, counts []float64) {
	byLe := map[float64]float64{}
	prefix := name + "_bucket{"
	for k, v := range after {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		ok := true
		for _, m := range match {
			if !strings.Contains(k, m) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		i := strings.Index(k, `le="`)
		if i < 0 {
			continue
		}
		leStr := k[i+4:]
		leStr = leStr[:strings.IndexByte(leStr, '"')]
		le, err := strconv.ParseFloat(leStr, 64)
		if err != nil {
			continue // +Inf parses; anything else is skipped
		}
		byLe[le] += v - before[k]
	}
	les = make([]float64, 0, len(byLe))
	for le := range byLe {
		les = append(les, le)
	}
	sort.Float64s(les)
	counts = make([]float64, len(les))
	for i, le := range les {
		counts[i] = byLe[le]
	}
	return les, counts
}

// histQuantile estimates the q-quantile of a Prometheus histogram from the
// bucket counts added between two scrapes, over every series of name whose
// labels contain all of match; linear within a bucket, like
// histogram_quantile. It also returns the number of observations.
func histQuantile(before, after map[string]float64, name string, q float64, match ...string) (float64, float64) {
	les, counts := histBuckets(before, after, name, match...)
	if len(les) == 0 {
		return 0, 0
	}
	total := counts[len(counts)-1]
	if total <= 0 {
		return 0, 0
	}
	rank := q * total
	prevLe, prevC := 0.0, 0.0
	for i, le := range les {
		c := counts[i]
		if c >= rank {
			if le > 1e300 { // +Inf: the last finite bound is all we know
				return prevLe, total
			}
			if c == prevC {
				return le, total
			}
			return prevLe + (le-prevLe)*(rank-prevC)/(c-prevC), total
		}
		prevLe, prevC = le, c
	}
	return prevLe, total
}

// histBucketOf returns the bounds (lo, hi] of the bucket that holds the
// q-quantile: what the histogram knows for sure, where histQuantile
// interpolates. hi is +Inf beyond the last finite bound.
func histBucketOf(before, after map[string]float64, name string, q float64, match ...string) (lo, hi float64) {
	les, counts := histBuckets(before, after, name, match...)
	if len(les) == 0 || counts[len(counts)-1] <= 0 {
		return 0, 0
	}
	rank := q * counts[len(counts)-1]
	for i, le := range les {
		if counts[i] >= rank && counts[i] > 0 {
			return lo, le
		}
		lo = le
	}
	return lo, les[len(les)-1]
}

// histShareAtMost returns the share (0–1) of a histogram's observations
// added between two scrapes that were at most le, exactly when le is one
// of its bucket bounds (else at most the largest bound below le).
func histShareAtMost(before, after map[string]float64, name string, le float64, match ...string) float64 {
	les, counts := histBuckets(before, after, name, match...)
	if len(les) == 0 || counts[len(counts)-1] <= 0 {
		return 0
	}
	var c float64
	for i, b := range les {
		if b <= le {
			c = counts[i]
		}
	}
	return c / counts[len(counts)-1]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms" }

func mb(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MB" }

// writeJSON writes v to out/name.
func writeJSON(out, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, name), append(b, '\n'), 0o644)
}

// table prints aligned rows of label and value.
type table struct{ rows [][2]string }

func (t *table) add(k string, format string, args ...any) {
	t.rows = append(t.rows, [2]string{k, fmt.Sprintf(format, args...)})
}

func (t *table) write(w io.Writer) {
	width := 0
	for _, r := range t.rows {
		width = max(width, len(r[0]))
	}
	for _, r := range t.rows {
		if r[0] == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
}

// sortedReasons lists failure reasons, most frequent first.
func sortedReasons(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%d × %s", m[k], k)
	}
	return out
}
