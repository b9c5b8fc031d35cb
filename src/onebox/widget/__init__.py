"""The website widget: a one-line script that answers a site's visitors from the key owner's
documents. One more door into the chat turn (``door="widget"``)."""
