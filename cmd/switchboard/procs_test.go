package main

import "testing"

// The controller gives all Ps at once when one is not enough, and takes
// them back only after a sustained quiet spell; a busy second in between
// starts the spell again.
func TestProcsState(t *testing.T) {
	s := procsState{max: 4, cur: 1}
	steps := []struct {
		cores float64
		want  int
	}{
		{0.30, 1}, {0.69, 1}, // under a core's 70 %: one P
		{0.75, 4},           // more: all of them
		{0.60, 4}, {1.8, 4}, // busy, stays
	}
	for range procsDownAfter - 1 {
		steps = append(steps, struct {
			cores float64
			want  int
		}{0.40, 4})
	}
	steps = append(steps, struct {
		cores float64
		want  int
	}{0.50, 4}) // one busier second: the spell starts over
	for range procsDownAfter - 1 {
		steps = append(steps, struct {
			cores float64
			want  int
		}{0.20, 4})
	}
	steps = append(steps, struct {
		cores float64
		want  int
	}{0.20, 1}) // the tenth quiet second in a row
	for i, st := range steps {
		if got := s.next(st.cores); got != st.want {
			t.Fatalf("step %d (%.2f cores): %d Ps, want %d", i, st.cores, got, st.want)
		}
	}
	one := procsState{max: 1, cur: 1}
	if got := one.next(3); got != 1 {
		t.Fatalf("a one-P machine: %d", got)
	}
}
