"""PII masking, the reversible bookend: personal data in a request becomes numbered placeholders before the
engine sees it (:mod:`.service`, Presidio in its own Serve deployment), and the user's values are put back
into the answer in the ingress (:mod:`.restore`, :mod:`.response`). See docs/guides/pii.md."""
