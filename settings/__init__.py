"""app.yaml and the environment, read into typed settings; below every other package.

One module per layer: `base` (the section base and error wording), `kpi` (what the KPI core
reads), `crm` (the sources), `slack` (the Slack app, access, digests, scheduler, surveys),
`app` (the whole file, loaded), `secrets` (the environment's secrets). `cron` and `periods`
are the two small languages app.yaml's values are written in; `vocab` holds the words app.yaml
shares with the normalized records. Nothing here imports `kpi`, `connectors` or `bot`.
"""
