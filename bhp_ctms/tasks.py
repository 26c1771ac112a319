def includeme(config):
    return None
