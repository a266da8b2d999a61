package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

// usageError marks a mistake in how scangate was called or in the input it
// was given: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// internalError marks a failure of scangate or its environment (database,
// network): exit 3.
type internalError struct{ err error }

func (e internalError) Error() string { return e.err.Error() }
func (e internalError) Unwrap() error { return e.err }

// badInput wraps err as a usage error, keeping nil as nil.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

func exitCode(err error) int {
	if errors.As(err, new(policyFailed)) {
		return ExitPolicy
	}
	var u usageError
	if errors.As(err, &u) {
		return ExitBadInput
	}
	var i internalError
	if errors.As(err, &i) {
		return ExitInternal
	}
	// cobra's own errors (unknown command, missing argument) are usage.
	if isCobraUsage(err) {
		return ExitBadInput
	}
	return ExitInternal
}

// isCobraUsage recognises the errors cobra returns before a command runs,
// which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "unknown shorthand", "required flag", "invalid argument"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// args makes a cobra argument check's error a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		return badInput(check(cmd, a))
	}
}
