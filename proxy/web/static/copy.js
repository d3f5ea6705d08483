// The copy button of the new password: copies it whole, without the
// spaces that group it for reading. Without JavaScript the button stays
// hidden and the password is selected by hand.
(function () {
  var code = document.getElementById("new-password");
  var button = document.getElementById("copy");
  var status = document.getElementById("copied");
  if (!code || !button || !navigator.clipboard) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(code.textContent.replace(/\s+/g, "")).then(function () {
      status.textContent = "Copied.";
    }, function () {
      status.textContent = "Could not copy: select the password and copy it.";
    });
  });
})();
