aigw-assessor-package/1
5c33375c-d7e7-5c4d-aef1-4570814be468
hTaNwkDNg7I+O16qDy+pHFPaZKAr02xr/Ew5Kg/UUAI=

— aigw-test wbeI6nQDHbmJuVibE+mZsSW0bb7gCZ7Zkm+meJcuRAD5B5PjqoBnXYN1MhBJvHNPgQ/1tbe7MRqYtgljePG/t5/W1wM=
