"""Operations: Prometheus metrics (`metrics`), health checks (`health`) and their endpoints (`views`)."""
