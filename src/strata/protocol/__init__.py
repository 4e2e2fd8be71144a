"""The OpenAI wire protocol as Strata speaks it: request and response bodies, the error body, and the
one translation from an OpenAI generation request to a serving ``GenerationRequest``. Shared by the
gateway (HTTP) and the workflows (batch lines, pipeline steps), so both speak it identically."""
