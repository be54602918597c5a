"""The officers', operators' and auditors' console (issue 18): a server-rendered web app on its
own HTTPS listener, admitted by officer client certificates through the officer gate."""
