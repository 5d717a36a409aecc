"""The sources: ``asyncrepo.repositories.<vendor>.<resource>``, one small module each, with
the vendor's shared client beside them. Vendor packages import nothing heavy at import time;
see ``asyncrepo.registry`` for names and URIs."""
