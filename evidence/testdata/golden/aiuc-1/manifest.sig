aigw-assessor-package/1
eb9aabbf-4752-573d-ac1f-455aaa71ea97
aaUCASUOCCtm6iSOelCz4z1CBaONjLJu1SA84ai6Mb8=

— aigw-test wbeI6t9CS7gE+Uz8fE8/uyH9y20rc7rLS0zAYVsj8swSaeKwv5NsZq+pYRXRkJkOLE4AUmrDI9vsNAcylSU+w10z4wQ=
