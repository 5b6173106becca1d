"""The model manager: the catalog, downloads from the Hugging Face hub, local model folders.

`catalog` says what can be installed and how it loads, `download` fetches a repo
(resumable, verified, cancellable), `local` validates, imports and lists model folders.
"""
