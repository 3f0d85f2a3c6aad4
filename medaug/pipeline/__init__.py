"""The whole job: ingest → de-identify → augment → write → audit, over a pool of workers."""
