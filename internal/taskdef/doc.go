// Package taskdef reads and checks task definitions: the containers of a
// task, started together from one revision of a family, as in Amazon ECS.
// It is pure: no database, no network, no engine.
//
// One schema, two syntaxes. People who use ECS bring their own task
// definition JSON (what they give register-task-definition, or the output
// of aws ecs describe-task-definition, wrapper and all); scangate's own
// files are YAML with the same camelCase field names. Both are read into a
// Definition, whose JSON is again ECS-shaped, so a stored definition reads
// as an ECS user expects.
//
// Reading and judging are split:
//
//   - Parse reads a document into a Definition: size, nesting and YAML alias
//     limits, syntax, field names and value types. It judges no values, so
//     that it can read back what the store kept under any cluster's rules.
//   - Validate judges the values against the cluster's rules (Options),
//     fills the defaults ECS fills (essential, the health check's timings,
//     the tcp protocol), and refuses what a cluster does not allow. It
//     applies equally to definitions made by WithImage or built in Go, so a
//     definition is fit to run only once Validate has passed.
//
// Every field of ECS's task and container definitions is known to Parse,
// and each is one of:
//
//   - used: a field of Definition or Container;
//   - ignored: meaningless here and harmless to drop (IAM roles, log
//     drivers, tags, Fargate's platform, what describe-task-definition adds
//     such as taskDefinitionArn and revision); each is listed, with why, in
//     Definition.Ignored;
//   - refused by Validate, for the host's sake: privileged containers
//     (unless the cluster allows them), bind mounts of host paths and
//     volumesFrom, host devices, added Linux capabilities, and the host's
//     PID, IPC or network namespace. Each would let a container reach past
//     its own filesystem, processes or network into the machine that runs
//     every other task; a scanned image proves nothing once it can;
//   - unsupported: a feature scangate's engine does not have (secrets,
//     ulimits, user, readonlyRootFilesystem, ...). Dropping such a field
//     would run the container other than as written, sometimes with less
//     protection than asked for (user: nobody would run as root), so Parse
//     refuses it unless its value is empty or the default, which says
//     nothing (describe-task-definition writes "systemControls": []).
//
// Anything else is an unknown field and refused, naming it: a typo must not
// silently mean the default. Errors name fields as the document does
// (containerDefinitions[1].portMappings[0].containerPort), never Go types.
package taskdef
