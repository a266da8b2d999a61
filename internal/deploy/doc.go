// Package deploy runs scangate's services, as Amazon ECS models them, on an
// engine (package engine; the Docker Engine today): clusters, task
// definitions with immutable revisions, services with a desired count and
// rolling deployments, and the tasks that run them.
//
// State lives in the database; the engine holds only containers labelled
// with their cluster, service, task and revision. A controller brings each
// service to its desired count: a task is recorded (PROVISIONING) before
// its containers are made, and container names derive from the task's id,
// so a server killed at any moment converges when it starts again: tasks
// recorded but never started are started, containers without a task are
// removed, and none is made twice.
//
// Admission is checked at every start, not only in the pipeline: a task's
// images must be in scangate's registry, pinned by digest, and their latest
// verdict Approved (or covered by an admin's override with a reason and an
// expiry). A Rejected or never-scanned image never runs, whoever asked.
//
// Rolling deployments follow ECS: minimum healthy and maximum percent bound
// how many tasks run while old ones are replaced; a task counts once it is
// healthy (or running, without a health check); a circuit breaker counts
// every task of the new deployment that stops before the deployment
// completes — failed starts, exits, OOM kills, failed health checks — and
// fails it at a threshold (half the desired count, at least 3) or a
// deadline, rolling back to the last completed revision when asked.
package deploy
