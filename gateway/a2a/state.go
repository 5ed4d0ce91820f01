package a2a

// Valid reports whether s is one of the task states of the specification
// ("unknown" is not: the gateway never records it).
func (s TaskState) Valid() bool {
	switch s {
	case StateSubmitted, StateWorking, StateInputRequired, StateAuthRequired,
		StateCompleted, StateFailed, StateCanceled, StateRejected:
		return true
	}
	return false
}

// Terminal reports whether s is final: completed, failed, canceled or
// rejected.
func (s TaskState) Terminal() bool {
	switch s {
	case StateCompleted, StateFailed, StateCanceled, StateRejected:
		return true
	}
	return false
}

// Interrupted reports whether the task waits for its caller
// (input-required, auth-required).
func (s TaskState) Interrupted() bool {
	return s == StateInputRequired || s == StateAuthRequired
}

// CanTransition reports whether a task may go from one state to another.
// The empty state is a hop whose callee has not answered yet: it may
// take any state. A state may be reported again (a new status message);
// a terminal state is final; rejected only comes before the work started
// (from submitted).
func CanTransition(from, to TaskState) bool {
	if !to.Valid() {
		return false
	}
	if from == "" || from == to {
		return true
	}
	switch from {
	case StateSubmitted:
		return true
	case StateWorking, StateInputRequired, StateAuthRequired:
		return to != StateSubmitted && to != StateRejected
	}
	return false // terminal
}

// allowedFrom lists the states from which a task may reach to (the empty
// state included), for stores that check transitions in a script.
func allowedFrom(to TaskState) []TaskState {
	var out []TaskState
	for _, from := range []TaskState{"", StateSubmitted, StateWorking, StateInputRequired, StateAuthRequired,
		StateCompleted, StateFailed, StateCanceled, StateRejected} {
		if CanTransition(from, to) {
			out = append(out, from)
		}
	}
	return out
}
