"""The session's machinery every workflow runs on: the session's jobs, money and history (runner), a job's
request and its money reserved (job_requests), the end of a job (outcomes), one-shot requests (background), the
journal's jobs: Resume, Re-import, Retry, Open Folder (history), images to PNGs (pixels), GLBs to objects
(importing), why a button is disabled (checks), what the scene settings choose (inputs), Test Connection
(connection), the session's state and its one reset() (state).
"""
