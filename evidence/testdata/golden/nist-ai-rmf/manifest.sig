aigw-assessor-package/1
503b8f61-1b7d-50d9-8ca3-aa720cf93bd5
92qPI7uYncgD1Rd7l2zu5mml/AO8R4aUkB2jLxnSnUI=

— aigw-test wbeI6m9+C06rr2sZD/Lo10qwQ/s5xuuQvEQU01+d9E/hP9Og07+6XA0/sqsFcwFyOyWX5oIFkCRrOkPBWMcfGJYI9QE=
