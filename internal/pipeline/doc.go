// Package pipeline runs scangate's pipelines: a commit starts an execution,
// whose source is archived, built into an image and pushed to the registry,
// then held at an approval stage until the vulnerability policy (or a
// person) decides, as CodePipeline's manual approval does in the seed.
//
// Every step is a River job inserted in the transaction that records the
// state it acts on, and every state change is an event: a server killed at
// any point resumes each execution where it was, and no execution stays
// InProgress for ever (a build job is retried, then fails the stage; an
// approval has an expiry job).
//
// An approval request has an unguessable token, as CodePipeline's does:
// every answer must carry it, so an answer meant for an older request of
// the same pipeline can never decide a newer one. The token is an HMAC of
// the request's id under a key kept in the data folder, and the database
// stores only its hash: the evaluator and the approval commands derive it
// from the key, and a copy of the database alone cannot answer.
package pipeline
