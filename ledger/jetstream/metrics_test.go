package jetstream

import (
	"reflect"
	"testing"
	"time"
)

// TestSnapshotAdd: the counters of sequencers (aigw serve's sequencer
// processes) add up across restarts; the gauges are the running one's own.
func TestSnapshotAdd(t *testing.T) {
	// Every field of PartitionStats is a counter or a gauge to Add and
	// Settled: a new field must be put in one or the other.
	if n := reflect.TypeFor[PartitionStats]().NumField(); n != 17 {
		t.Fatalf("PartitionStats has %d fields; Add and Settled know 17", n)
	}
	old := Snapshot{
		Partitions: map[int]PartitionStats{0: {Owned: true, Batches: 3, Appended: 40, Duplicates: 1, Terminated: 1, Errors: 2, LostDeliveries: 1,
			LastBatch: 7, LastCommit: time.Millisecond, Busy: time.Second, Appending: 2 * time.Second, Acking: 3 * time.Second,
			Waiting: 4 * time.Second, AckFloor: 50, Pending: 9, Lag: 12 * time.Second, Rested: 5 * time.Second}},
		Logs: map[string]uint64{"acme": 40, "system": 2},
	}
	base := old.Settled()
	if ps := base.Partitions[0]; ps.Owned || ps.LastBatch != 0 || ps.LastCommit != 0 || ps.Pending != 0 || ps.Lag != 0 || ps.Appended != 40 || ps.AckFloor != 50 {
		t.Fatalf("Settled = %+v", ps)
	}
	if got := base.Add(Snapshot{}); !reflect.DeepEqual(got, base) {
		t.Fatalf("a new process's first (empty) report: %+v; want %+v", got, base)
	}
	cur := Snapshot{
		Partitions: map[int]PartitionStats{0: {Owned: true, Batches: 1, Appended: 25, Duplicates: 2, Errors: 1, LostDeliveries: 1, LastBatch: 25,
			LastCommit: 2 * time.Millisecond, Busy: time.Second, Appending: time.Second, Acking: time.Second, Waiting: time.Second,
			AckFloor: 75, Pending: 1, Lag: time.Millisecond, Rested: time.Second}, 1: {Appended: 3}},
		Logs: map[string]uint64{"acme": 65, "beta": 3},
	}
	got := base.Add(cur)
	want := PartitionStats{Owned: true, Batches: 4, Appended: 65, Duplicates: 3, Terminated: 1, Errors: 3, LostDeliveries: 2, LastBatch: 25,
		LastCommit: 2 * time.Millisecond, Busy: 2 * time.Second, Appending: 3 * time.Second, Acking: 4 * time.Second,
		Waiting: 5 * time.Second, AckFloor: 75, Pending: 1, Lag: time.Millisecond, Rested: 6 * time.Second}
	if got.Partitions[0] != want || got.Partitions[1].Appended != 3 {
		t.Fatalf("Add = %+v\nwant %+v", got.Partitions, want)
	}
	if !reflect.DeepEqual(got.Logs, map[string]uint64{"acme": 65, "system": 2, "beta": 3}) {
		t.Fatalf("logs %v", got.Logs)
	}
	if base.Partitions[0].Appended != 40 || base.Logs["acme"] != 40 {
		t.Fatal("Add changed its base")
	}
}
