"""gRPC service implementations. Each servicer is thin: it reads the caller from the gate and
calls into the node's core modules. Later: feeds (subscribe), queries, reports, audit."""
