"""Tests of app identity and roles: tokens, sockets, the role table, the gRPC interceptor."""
