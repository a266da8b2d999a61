package deploy

import "testing"

// The rolling deployment's bounds round as ECS's do: the minimum healthy
// count up, the maximum running count down; the circuit breaker trips at
// half the desired count, at least 3 and at most 200.
func TestRolloutBounds(t *testing.T) {
	pct := func(n int) *int { return &n }
	for _, c := range []struct {
		desired, minPct, maxPct int
		floor, ceiling          int
	}{
		{desired: 1, minPct: 100, maxPct: 200, floor: 1, ceiling: 2},
		{desired: 5, minPct: 100, maxPct: 200, floor: 5, ceiling: 10},
		{desired: 5, minPct: 50, maxPct: 150, floor: 3, ceiling: 7},
		{desired: 3, minPct: 0, maxPct: 100, floor: 0, ceiling: 3},
		{desired: 0, minPct: 100, maxPct: 200, floor: 0, ceiling: 0},
	} {
		cfg := DeploymentConfiguration{MinimumHealthyPercent: pct(c.minPct), MaximumPercent: pct(c.maxPct)}
		if got := minHealthy(c.desired, cfg); got != c.floor {
			t.Errorf("desired %d at %d%%: minimum healthy %d, want %d", c.desired, c.minPct, got, c.floor)
		}
		if got := maxRunning(c.desired, cfg); got != c.ceiling {
			t.Errorf("desired %d at %d%%: maximum running %d, want %d", c.desired, c.maxPct, got, c.ceiling)
		}
	}
	if got := minHealthy(4, DeploymentConfiguration{}); got != 4 {
		t.Errorf("default minimum healthy of 4: %d", got)
	}
	if got := maxRunning(4, DeploymentConfiguration{}); got != 8 {
		t.Errorf("default maximum of 4: %d", got)
	}
	for desired, want := range map[int]int{1: 3, 5: 3, 7: 4, 10: 5, 1000: 200} {
		if got := breakerThreshold(desired); got != want {
			t.Errorf("breaker threshold for %d tasks: %d, want %d", desired, got, want)
		}
	}
}

// A task's health is ECS's: UNHEALTHY if any checked container is, HEALTHY
// when every checked one is, UNKNOWN otherwise; containers without a check
// do not count.
func TestTaskHealth(t *testing.T) {
	for _, c := range []struct {
		containers []string
		want       string
	}{
		{[]string{HealthHealthy, ""}, HealthHealthy},
		{[]string{HealthHealthy, HealthUnknown}, HealthUnknown},
		{[]string{HealthHealthy, HealthUnhealthy}, HealthUnhealthy},
		{[]string{"", ""}, HealthUnknown},
	} {
		var cs []TaskContainer
		for _, h := range c.containers {
			cs = append(cs, TaskContainer{Health: h})
		}
		if got := taskHealth(cs); got != c.want {
			t.Errorf("%v: %s, want %s", c.containers, got, c.want)
		}
	}
}
