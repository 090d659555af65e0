"""The groupchat relay: an untrusted, ordered, lossless websocket relay (the MLS Delivery Service)."""
