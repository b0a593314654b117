"""Object storage: URI-addressed reads and writes (`objects`), the exactly-once commit protocol (`commit`),
where every output lives (`layout`), the model registry (`registry`), the embedded S3 server for laptops
and tests (`embedded_server`) and the least-privilege bucket policy (`policy`). Never imports Ray."""
