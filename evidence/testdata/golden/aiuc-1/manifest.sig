aigw-assessor-package/1
eb9aabbf-4752-573d-ac1f-455aaa71ea97
eCm9j73GzF6L3Z2lRgQJ8+A0/GOjqng7bJyW+VyFHbc=

— aigw-test wbeI6kLLaMgdXqHpyG77FYwXtRrS1ac4Opcu7X1m7s99BQeDsZ3viMGuTWICbnHe/lQZKCwBtNzZbBUeE73Uht0BQAM=
